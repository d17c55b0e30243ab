import { test } from "node:test";
import assert from "node:assert/strict";
import { lookup, format, pick } from "../static/lib/catalogue.js";

const texts = { ja: { a: "日本語 {n}件", only: "日本語だけ" }, en: { a: "English {n}" } };

test("lookup is the language's text, else the Japanese one, else the key", () => {
  assert.equal(lookup(texts, "en", "a", { n: 2 }), "English 2");
  assert.equal(lookup(texts, "ja", "a", { n: 2 }), "日本語 2件");
  assert.equal(lookup(texts, "en", "only"), "日本語だけ");
  assert.equal(lookup(texts, "en", "missing"), "missing");
  assert.equal(lookup({ ja: {}, en: {} }, "en", "a"), "a");
});

test("format fills every placeholder, as often as it occurs", () => {
  assert.equal(format("{a}-{b}-{a}", { a: 1, b: "x" }), "1-x-1");
  assert.equal(format("{a}", undefined), "{a}");
});

test("pick is the language's text of an API pair", () => {
  assert.equal(pick({ ja: "日", en: "E" }, "en"), "E");
  assert.equal(pick({ ja: "日", en: "" }, "en"), "日");
  assert.equal(pick({ en: "E" }, "ja"), "E");
  assert.equal(pick(null, "ja"), "");
});
