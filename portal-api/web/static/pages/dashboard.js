// The dashboard: the period's status, counts by severity and kind, and
// (for the session's own customer) the comparisons.
import { h, link } from "../dom.js";
import { t, pick } from "../texts.js";
import { api } from "../api.js";
import { main, page } from "../shell.js";
import { periodParams } from "../lib/format.js";
import { KINDS } from "../lib/scope.js";
import { failed } from "../components/error.js";
import { periodForm } from "../components/period.js";
import { sevLabel } from "../components/stars.js";
import { customerBar } from "../components/customer-bar.js";
import { compareSections } from "./compare.js";

export function dashboard(sc) {
  page("dashTitle");
  customerBar(sc, "summary");
  var pp = periodParams(new URLSearchParams(location.search));
  return api("GET", sc.summary + "?" + pp).then(function (r) {
    if (failed(r)) return;
    var s = r.data, m = main();
    m.appendChild(periodForm(s.from, s.to));
    if (!s.devices) {
      m.appendChild(h("section", { class: "card status", id: "empty-state" }, h("p", { class: "headline" }, pick(s.empty_state) || t("noDevices"))));
      return;
    }
    var q = new URLSearchParams({ from: s.from, to: s.to });
    var important = new URLSearchParams(q); important.set("severity", "3,2");
    m.appendChild(h("section", { class: "card status" + (s.problems_found ? " bad" : ""), id: "status", "aria-labelledby": "status-headline" },
      h("p", { class: "headline", id: "status-headline" }, pick(s.message) || t(s.problems_found ? "dashTitle" : "noProblem")),
      h("p", { id: "status-period" }, t("periodText", { from: s.from, to: s.to })),
      h("ul", { class: "counts" },
        h("li", {}, h("span", { class: "n", id: "count-important" }, s.important), t("important")),
        h("li", {}, h("span", { class: "n", id: "count-total" }, s.total), t("total")),
        h("li", {}, h("span", { class: "n" }, s.devices), t("devicesN"))),
      h("div", { class: "actions" },
        link(sc.ui + "/alerts?" + important, t("checkProblems"), { class: "button", id: "link-problems" }),
        link(sc.ui + "/alerts?" + q, t("checkDetails"), { class: "button secondary", id: "link-details" }))));
    var sev = s.by_severity || {}, kind = s.by_kind || {};
    m.appendChild(h("div", { class: "grid" },
      h("section", { class: "card", "aria-labelledby": "h-sev" }, h("h2", { id: "h-sev" }, t("bySeverity")),
        h("ul", { class: "counts", id: "by-severity" }, [3, 2, 1].map(function (n) {
          var sq = new URLSearchParams(q); sq.set("severity", String(n));
          return h("li", {}, link(sc.ui + "/alerts?" + sq, [h("span", { class: "n" }, sev[n] || 0), sevLabel(n)]));
        }))),
      h("section", { class: "card", "aria-labelledby": "h-kind" }, h("h2", { id: "h-kind" }, t("byKind")),
        h("ul", { class: "counts", id: "by-kind" }, KINDS.map(function (k) {
          var kq = new URLSearchParams(q); kq.set("kind", k);
          return h("li", {}, link(sc.ui + "/alerts?" + kq, [h("span", { class: "n" }, kind[k] || 0), t("kind_" + k)]));
        })))));
    // The comparisons exist for the session's own customer only.
    if (sc.own) return compareSections(q);
  });
}
