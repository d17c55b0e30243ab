// Refusals that pass with time (429 with Retry-After): when to try again,
// from the API's error code ({"error": code, "message": text}) and the
// catalogue, never from the wording of the server's message. No DOM.

// retryAfter reads a Retry-After header in seconds (the API sends no
// dates): a whole number of at least 1, or null.
export function retryAfter(v) {
  if (!v || !/^\d+$/.test(v.trim())) return null;
  var n = parseInt(v, 10);
  return n > 0 ? n : null;
}

// retryText says when to try again: seconds under two minutes, then
// minutes, then hours, rounded up so that a retry at the time said is
// never refused. t is the catalogue lookup of the page's language.
export function retryText(t, secs) {
  if (secs === 1) return t("retryInOneSecond");
  if (secs < 120) return t("retryInSeconds", { n: secs });
  if (secs < 2 * 3600) return t("retryInMinutes", { n: Math.ceil(secs / 60) });
  return t("retryInHours", { n: Math.ceil(secs / 3600) });
}

// errorText is the message of a refusal r ({status, data, retryAfter}),
// with when to try again if it passes with time. The API words a code's
// refusal with the catalogue's api.<code>, which for throttled says "wait
// a moment": when that is the message and the catalogue has retry_<code>,
// the latter says the actual wait instead. A more specific message under
// the same code (the caps on SMS codes) keeps its words, and the wait
// follows it (retryAfterMessage joins them as the language does).
export function errorText(t, r) {
  var d = r.data || {};
  var msg = d.message || t("genericError");
  if (r.status !== 429 || !r.retryAfter) return msg;
  var wait = retryText(t, r.retryAfter), own = "retry_" + d.error;
  if (d.error && msg === t("api." + d.error) && t(own) !== own) return t(own, { wait: wait });
  return t("retryAfterMessage", { message: msg, wait: wait });
}
