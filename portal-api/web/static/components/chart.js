// A chart of daily series (the vendored uPlot, a global of its classic
// script) with its data table, for those who do not read the chart.
import { h } from "../dom.js";
import { t } from "../texts.js";
import { dayTS } from "../lib/format.js";

var PALETTE = ["#0b5cad", "#d1495b", "#2e933c", "#edae49", "#6a4c93", "#00798c", "#8d6a9f", "#c05746"];
var charts = []; // live uPlot instances, destroyed on navigation
var resizing = false;

export function destroyCharts() {
  charts.forEach(function (c) { c.destroy(); });
  charts = [];
}

// chart draws series ({label, values, dash}) over days (YYYY-MM-DD) in box.
export function chart(box, label, days, series) {
  box.setAttribute("role", "img");
  box.setAttribute("aria-label", label);
  if (typeof uPlot === "undefined" || !days.length) return;
  if (!resizing) {
    resizing = true;
    window.addEventListener("resize", function () {
      charts.forEach(function (u) { var w = u.root.parentNode.clientWidth; if (w > 0) u.setSize({ width: Math.max(280, w), height: 260 }); });
    });
  }
  var w = Math.max(280, box.clientWidth || document.getElementById("main").clientWidth - 40);
  var opts = {
    width: w, height: 260, scales: { x: { time: true } },
    series: [{}].concat(series.map(function (s, i) {
      return { label: s.label, stroke: PALETTE[i % PALETTE.length], width: 2, dash: s.dash, points: { show: days.length < 40 } };
    })),
    axes: [{}, { size: 50 }], legend: { show: true }
  };
  /* global uPlot */
  var u = new uPlot(opts, [days.map(dayTS)].concat(series.map(function (s) { return s.values; })), box);
  charts.push(u);
}

// dataTable is a chart's data, folded under a summary.
export function dataTable(id, caption, heads, rows) {
  return h("details", {}, h("summary", {}, t("dataTable")), h("div", { class: "table-wrap" }, h("table", { id: id },
    h("caption", { class: "hint" }, caption),
    h("thead", {}, h("tr", {}, heads.map(function (x) { return h("th", { scope: "col" }, x); }))),
    h("tbody", {}, rows.map(function (r) { return h("tr", {}, r.map(function (c) { return h("td", {}, c); })); })))));
}
