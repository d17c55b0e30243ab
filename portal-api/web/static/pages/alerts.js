// The alerts: a filtered, sorted and paged list, and one alert's evidence.
import { h, link, field, query } from "../dom.js";
import { t, lang } from "../texts.js";
import { api } from "../api.js";
import { main, page, go } from "../shell.js";
import { when } from "../lib/format.js";
import { KINDS } from "../lib/scope.js";
import { failed } from "../components/error.js";
import { empty } from "../components/empty.js";
import { sevLabel, starsOf } from "../components/stars.js";
import { table, sortFields, pager } from "../components/table.js";
import { customerBar } from "../components/customer-bar.js";

export function alertsPage(sc) {
  page("alertsTitle");
  customerBar(sc, "alerts");
  var q = query();
  var sevSel = (q.get("severity") || "").split(",").filter(Boolean);
  var devSelect = h("select", { name: "device" }, h("option", { value: "" }, t("all")));
  var f = h("form", { class: "card filters", id: "alert-filters" },
    field("f-from", "from", h("input", { name: "from", type: "date", value: q.get("from") || "" })),
    field("f-to", "to", h("input", { name: "to", type: "date", value: q.get("to") || "" })),
    field("f-device", "device", devSelect),
    h("fieldset", {}, h("legend", {}, t("severity")), [3, 2, 1].map(function (n) {
      return h("label", {}, h("input", { type: "checkbox", name: "severity", value: String(n), checked: sevSel.indexOf(String(n)) >= 0 }), " ", starsOf(n), " ", t("sev" + n));
    })),
    field("f-kind", "kind", h("select", { name: "kind" }, h("option", { value: "" }, t("all")), KINDS.map(function (k) {
      return h("option", { value: k, selected: q.get("kind") === k }, t("kind_" + k));
    }))),
    field("f-q", "text", h("input", { name: "q", type: "search", value: q.get("q") || "" }), "textHint"),
    sortFields(q, [["detected_at", "sortDetected"], ["severity", "sortSeverity"]]),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "filter-submit" }, t("filter")),
      link(sc.ui + "/alerts", t("reset"), { class: "button secondary" })));
  f.addEventListener("submit", function (e) {
    e.preventDefault();
    var n = new URLSearchParams();
    ["from", "to", "device", "kind", "q", "sort", "order"].forEach(function (k) { var v = f.elements[k].value; if (v) n.set(k, v); });
    var sv = Array.prototype.filter.call(f.querySelectorAll("input[name=severity]"), function (c) { return c.checked; }).map(function (c) { return c.value; });
    if (sv.length) n.set("severity", sv.join(","));
    go(sc.ui + "/alerts?" + n);
  });
  main().appendChild(f);
  api("GET", sc.api + "/devices").then(function (r) {
    if (!r.ok) return;
    (r.data.items || []).forEach(function (d) {
      devSelect.appendChild(h("option", { value: d.device_id, selected: q.get("device") === d.device_id }, (d.serial || d.device_id) + (d.model ? " (" + d.model + ")" : "")));
    });
  });
  var p = new URLSearchParams(q);
  if (!p.get("page_size")) p.set("page_size", "20");
  return api("GET", sc.api + "/alerts?" + p).then(function (r) {
    if (failed(r)) return;
    var d = r.data, items = d.items || [];
    var region = h("section", { id: "alerts", "aria-live": "polite" });
    main().appendChild(region);
    if (!items.length) { region.appendChild(empty("no-alerts", t("noAlerts"))); return; }
    var l = lang();
    region.appendChild(table("alert-table",
      [[t("detectedAt")], [t("severity")], [t("kind")], [t("what")], [t("device"), "hide-sm"], [t("action"), "hide-sm"]],
      items.map(function (a) {
        return h("tr", {}, h("td", {}, when(a.detected_at, l)), h("td", {}, sevLabel(a.severity)), h("td", {}, t("kind_" + a.kind)),
          h("td", {}, link(sc.ui + "/alerts/" + encodeURIComponent(a.id), a.label || a.indicator || a.id, { class: "alert-link" }),
            a.indicator && a.label ? h("div", { class: "hint" }, a.indicator) : null),
          h("td", { class: "hide-sm" }, a.device_id), h("td", { class: "hide-sm" }, a.action || "—"));
      })));
    region.appendChild(pager(sc.ui + "/alerts", q, d, items.length));
  });
}

var FIELD_ORDER = ["id", "detected_at", "severity", "kind", "label", "indicator", "action", "device_id", "src_ip", "src_port", "src_mac",
  "dst_ip", "dst_port", "dst_mac", "protocol", "zones", "url", "domain", "file_name", "file_sha256", "definitions_version", "count"];

export function alertPage(sc, id) {
  page("alertTitle");
  customerBar(sc, "alerts");
  main().appendChild(h("p", {}, link(sc.ui + "/alerts", "← " + t("backToList"), { id: "back-to-list" })));
  return api("GET", sc.api + "/alerts/" + encodeURIComponent(id)).then(function (r) {
    if (failed(r)) return;
    var a = r.data, l = lang();
    var keys = FIELD_ORDER.filter(function (k) { return k in a; }).concat(Object.keys(a).filter(function (k) { return FIELD_ORDER.indexOf(k) < 0; }));
    main().appendChild(h("section", { class: "card", id: "alert-detail" }, h("dl", { class: "evidence" }, keys.map(function (k) {
      var v = a[k], shown;
      if (k === "severity") shown = sevLabel(v);
      else if (k === "kind") shown = t("kind_" + v);
      else if (/_at$|_seen$/.test(k)) shown = when(v, l);
      else if (Array.isArray(v)) shown = v.length ? v.join(", ") : "—";
      else if (v && typeof v === "object") shown = JSON.stringify(v);
      else shown = v === "" || v === null || v === undefined ? "—" : String(v);
      return [h("dt", {}, t("f_" + k) === "f_" + k ? k : t("f_" + k)), h("dd", { "data-field": k }, shown)];
    }))));
  });
}
