// Refusals of the API on the page: the banner in place of what could not
// load, the line inside a section, the form's error box.
import { h } from "../dom.js";
import { t } from "../texts.js";
import { errText } from "../api.js";
import { session } from "../state.js";
import { go, main } from "../shell.js";

// errorBanner is a refusal shown in place of what could not load, read out
// at once.
export function errorBanner(text) { return h("p", { class: "error", role: "alert" }, text); }

// errorLine is a refusal inside a section that loads beside others.
export function errorLine(text) { return h("p", { class: "error" }, text); }

// errorBox is a form's error line, read out as it changes.
export function errorBox(id) { return h("p", { id: id || "error", class: "error", role: "alert", "aria-live": "assertive" }); }

// failed handles a refusal of a page's main request: to the login when
// the session has ended, else a banner. It says whether r failed.
export function failed(r) {
  if (r.status === 401) { session.me = null; go("/login", true); return true; }
  if (!r.ok) { main().appendChild(errorBanner(r.status === 404 ? t("notFound") : errText(r))); return true; }
  return false;
}
