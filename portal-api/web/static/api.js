// The portal API (/api/v1): same-origin JSON, in the page's language.
import { lang, t } from "./texts.js";
import { retryAfter, errorText } from "./lib/retry.js";

// api calls the portal; state-changing calls are same-origin JSON. It
// resolves to {status, ok, data, retryAfter}: retryAfter is the seconds a
// refusal that passes with time (429) says to wait, or null; status 0 is a
// network failure.
export function api(method, path, body) {
  var opt = { method: method, credentials: "same-origin", headers: { "Accept": "application/json", "Accept-Language": lang() } };
  if (method !== "GET") { opt.headers["Content-Type"] = "application/json"; opt.body = JSON.stringify(body || {}); }
  return fetch(path, opt).then(function (r) {
    return r.text().then(function (txt) {
      var data = null;
      try { data = txt ? JSON.parse(txt) : null; } catch (e) { data = null; }
      return { status: r.status, ok: r.ok, data: data, retryAfter: retryAfter(r.headers.get("Retry-After")) };
    });
  }, function () { return { status: 0, ok: false, data: null, retryAfter: null }; });
}

// errText is the message of a refusal, with when to try again if it
// passes with time (a throttled login, password or code).
export function errText(r) { return errorText(t, r); }
