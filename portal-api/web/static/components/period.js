// The period picker (from, to) of the dashboard and the comparisons: it
// changes the address's query, and the page reads it from there.
import { h, field, query } from "../dom.js";
import { t } from "../texts.js";
import { go } from "../shell.js";

export function periodForm(from, to) {
  var f = h("form", { class: "period", id: "period-form", "aria-label": t("period") },
    field("period-from", "from", h("input", { name: "from", type: "date", value: from || "" })),
    field("period-to", "to", h("input", { name: "to", type: "date", value: to || "" })),
    h("button", { type: "submit", class: "secondary" }, t("show")));
  f.addEventListener("submit", function (e) {
    e.preventDefault();
    var q = query();
    ["from", "to"].forEach(function (k) { if (f.elements[k].value) q.set(k, f.elements[k].value); else q.delete(k); });
    q.delete("page");
    go(location.pathname + "?" + q.toString());
  });
  return f;
}
