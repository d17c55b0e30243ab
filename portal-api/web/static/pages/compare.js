// The comparisons: the customer's alerts against the other participants'
// average, and per device; each chart with its data table.
import { h } from "../dom.js";
import { t, pick } from "../texts.js";
import { api, errText } from "../api.js";
import { main, page } from "../shell.js";
import { periodParams } from "../lib/format.js";
import { periodForm } from "../components/period.js";
import { errorLine } from "../components/error.js";
import { empty } from "../components/empty.js";
import { chart, dataTable } from "../components/chart.js";

export function compareSections(q) {
  var pSec = h("section", { class: "card", id: "compare-participants", "aria-labelledby": "h-cp" }, h("h2", { id: "h-cp" }, t("compareParticipants")));
  var dSec = h("section", { class: "card", id: "compare-devices", "aria-labelledby": "h-cd" }, h("h2", { id: "h-cd" }, t("compareDevices")));
  main().appendChild(pSec);
  main().appendChild(dSec);
  var a = api("GET", "/api/v1/compare/participants?" + q).then(function (r) {
    if (!r.ok) { pSec.appendChild(errorLine(errText(r))); return; }
    var c = r.data;
    if (!c.available) { pSec.appendChild(empty("participants-hidden", pick(c.reason), "empty")); return; }
    pSec.appendChild(h("p", { class: "hint" }, t("participantsN", { n: c.participants })));
    var days = c.days || [];
    if (!days.length) { pSec.appendChild(empty(null, t("noData"), "empty")); return; }
    var box = h("div", { class: "chart", id: "chart-participants" });
    pSec.appendChild(box);
    chart(box, t("chartParticipants"), days.map(function (d) { return d.day; }), [
      { label: t("mine"), values: days.map(function (d) { return d.mine; }) },
      { label: t("average"), values: days.map(function (d) { return d.average; }), dash: [6, 4] }]);
    pSec.appendChild(dataTable("table-participants", t("chartParticipants"), [t("day"), t("mine"), t("average"), t("percentile")],
      days.map(function (d) { return [d.day, d.mine, (+d.average).toFixed(1), d.percentile === null || d.percentile === undefined ? "—" : Math.round(d.percentile)]; })));
  });
  var b = api("GET", "/api/v1/compare/devices?" + q).then(function (r) {
    if (!r.ok) { dSec.appendChild(errorLine(errText(r))); return; }
    var devs = r.data.devices || [];
    if (!devs.length) { dSec.appendChild(empty(null, t("noDevices"), "empty")); return; }
    var set = {};
    devs.forEach(function (d) { (d.days || []).forEach(function (x) { set[x.day] = true; }); });
    var days = Object.keys(set).sort();
    if (!days.length) { dSec.appendChild(empty(null, t("noData"), "empty")); return; }
    var box = h("div", { class: "chart", id: "chart-devices" });
    dSec.appendChild(box);
    var series = devs.map(function (d) {
      var m = {}; (d.days || []).forEach(function (x) { m[x.day] = x.alerts; });
      return { label: d.serial || d.device_id, values: days.map(function (day) { return m[day] || 0; }) };
    });
    chart(box, t("chartDevices"), days, series);
    dSec.appendChild(dataTable("table-devices", t("chartDevices"), [t("serial"), t("total")],
      devs.map(function (d) { return [d.serial || d.device_id, d.total]; })));
  });
  return Promise.all([a, b]);
}

export function comparePage() {
  page("compareTitle");
  var q = periodParams(new URLSearchParams(location.search));
  main().appendChild(periodForm(q.get("from"), q.get("to")));
  return compareSections(q);
}
