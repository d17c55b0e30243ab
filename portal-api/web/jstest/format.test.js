// Run by TestJavaScript (node_test.go) with TZ=Asia/Tokyo, the time zone
// of the portal's customers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { when, stars, dayTS, bytes, localTime, periodParams, pageRange } from "../static/lib/format.js";

test("when shows an API time in Japan's time, in the page's language", () => {
  assert.equal(when("2026-12-04T15:30:05Z", "ja"), "2026/12/05 0:30:05");
  assert.equal(when("2026-12-04T15:30:05+09:00", "ja"), "2026/12/04 15:30:05");
  assert.equal(when("2026-12-04T15:30:05Z", "en"), "5 Dec 2026, 00:30:05");
});

test("when shows a dash for no time", () => {
  for (const v of ["", null, undefined, "not a time", "1970-01-01T00:00:00Z", "0001-01-01T00:00:00Z"]) {
    assert.equal(when(v, "ja"), "—", String(v));
  }
});

test("stars fill up to the severity", () => {
  const cases = [[3, "★★★"], [2, "★★☆"], [1, "★☆☆"], [0, "☆☆☆"], ["2", "★★☆"], [undefined, "☆☆☆"]];
  for (const [n, want] of cases) assert.equal(stars(n), want, String(n));
});

test("dayTS is the day's UTC midnight in seconds", () => {
  assert.equal(dayTS("2026-12-04"), Date.UTC(2026, 11, 4) / 1000);
  assert.equal(dayTS("1970-01-02"), 86400);
});

test("bytes counts UTF-8", () => {
  assert.equal(bytes("abc"), 3);
  assert.equal(bytes("見守り"), 9);
});

test("localTime reads a datetime-local value", () => {
  assert.equal(localTime(""), null);
  assert.equal(localTime("nonsense"), null);
  assert.equal(localTime("2026-12-04T09:00").toISOString(), "2026-12-04T00:00:00.000Z");
});

test("periodParams keeps only the period", () => {
  assert.equal(periodParams(new URLSearchParams("from=2026-11-01&page=3&to=2026-11-30&kind=ip")).toString(), "from=2026-11-01&to=2026-11-30");
  assert.equal(periodParams(new URLSearchParams("from=&page=2")).toString(), "");
});

test("pageRange says what a page of a list shows", () => {
  assert.deepEqual(pageRange(1, 20, 45, 20), { page: 1, first: 1, last: 20, total: 45, prev: false, next: true });
  assert.deepEqual(pageRange(3, 20, 45, 5), { page: 3, first: 41, last: 45, total: 45, prev: true, next: false });
  // An answer without paging fields is one page of what it holds.
  assert.deepEqual(pageRange(undefined, undefined, undefined, 7), { page: 1, first: 1, last: 7, total: 7, prev: false, next: false });
});
