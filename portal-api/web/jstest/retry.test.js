// The refusals that pass with time, worded from the catalogue the portal
// serves (schemas/messages), in both languages.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { retryAfter, retryText, errorText } from "../static/lib/retry.js";
import { lookup } from "../static/lib/catalogue.js";

const texts = {};
for (const l of ["ja", "en"]) texts[l] = JSON.parse(readFileSync(new URL("../../../schemas/messages/" + l + ".json", import.meta.url)));
const tr = (l) => (key, vars) => lookup(texts, l, key, vars);
const ja = tr("ja"), en = tr("en");

test("retryAfter reads whole seconds of at least 1", () => {
  const cases = [["30", 30], [" 7 ", 7], ["1", 1], ["0", null], ["", null], [null, null], ["1.5", null], ["-3", null],
    ["Fri, 04 Dec 2026 12:00:00 GMT", null]];
  for (const [v, want] of cases) assert.equal(retryAfter(v), want, String(v));
});

test("retryText rounds the wait up, in seconds, minutes or hours", () => {
  const cases = [[1, "1秒後に再度お試しください。"], [59, "59秒後に再度お試しください。"], [119, "119秒後に再度お試しください。"],
    [120, "2分後に再度お試しください。"], [121, "3分後に再度お試しください。"], [7199, "120分後に再度お試しください。"],
    [7200, "2時間後に再度お試しください。"], [7201, "3時間後に再度お試しください。"]];
  for (const [secs, want] of cases) assert.equal(retryText(ja, secs), want, String(secs));
  assert.equal(retryText(en, 1), "Try again in 1 second.");
  assert.equal(retryText(en, 90), "Try again in 90 seconds.");
});

// refusal is what api() resolves to for an error of the API in lang.
function refusal(lang, status, code, key, wait) {
  return { status, ok: false, data: { error: code, message: lookup(texts, lang, "api." + key) }, retryAfter: wait };
}

test("a throttled refusal says the actual wait instead of a moment", () => {
  assert.equal(errorText(ja, refusal("ja", 429, "throttled", "throttled", 30)), "試行回数が多すぎます。30秒後に再度お試しください。");
  assert.equal(errorText(en, refusal("en", 429, "throttled", "throttled", 300)), "Too many attempts. Try again in 5 minutes.");
});

test("a more specific throttled refusal keeps its words, and the wait follows", () => {
  assert.equal(errorText(ja, refusal("ja", 429, "throttled", "sms_throttled", 45)),
    "確認コードの送信が多すぎます。届いたコードを入力するか、しばらく待ってから再送してください。45秒後に再度お試しください。");
  assert.equal(errorText(en, refusal("en", 429, "throttled", "sms_phone_throttled", 3600)),
    "Too many codes were sent to this phone number; wait before asking for another. Try again in 60 minutes.");
});

test("a refusal without a wait is the API's message", () => {
  assert.equal(errorText(ja, refusal("ja", 429, "throttled", "sms_session_limit", null)), lookup(texts, "ja", "api.sms_session_limit"));
  assert.equal(errorText(en, refusal("en", 401, "invalid_credentials", "invalid_credentials", 30)), lookup(texts, "en", "api.invalid_credentials"));
});

test("a refusal without a message is the generic error", () => {
  assert.equal(errorText(en, { status: 0, ok: false, data: null, retryAfter: null }), "Something went wrong. Try again shortly.");
  assert.equal(errorText(ja, { status: 502, ok: false, data: { error: "bad_gateway" }, retryAfter: null }), lookup(texts, "ja", "genericError"));
});
