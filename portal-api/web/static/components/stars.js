// The severity of an alert as a star rating, with its word for screen
// readers and wide screens.
import { h } from "../dom.js";
import { t } from "../texts.js";
import { stars } from "../lib/format.js";

export function starsOf(n) { return h("span", { class: "stars", "aria-hidden": "true" }, stars(n)); }

export function sevLabel(n) {
  return h("span", { "aria-label": t("severity") + " " + n + "/3 " + t("sev" + n) }, starsOf(n), " ", h("span", { class: "hide-sm" }, t("sev" + n)));
}
