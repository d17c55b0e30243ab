// The devices: the list with their state, and one device (where the mails
// about it link to).
import { h, link } from "../dom.js";
import { t, lang } from "../texts.js";
import { api } from "../api.js";
import { main, page } from "../shell.js";
import { when } from "../lib/format.js";
import { failed } from "../components/error.js";
import { empty } from "../components/empty.js";
import { table } from "../components/table.js";
import { customerBar } from "../components/customer-bar.js";

export function devicesPage(sc) {
  page("devicesTitle");
  customerBar(sc, "devices");
  return api("GET", sc.api + "/devices").then(function (r) {
    if (failed(r)) return;
    var items = r.data.items || [], l = lang();
    if (!items.length) { main().appendChild(empty("no-devices", t("noDevices"))); return; }
    main().appendChild(table("device-table",
      [t("serial"), t("model"), t("status"), t("lastContact"), t("firmware"), t("definitions"), t("clients")].map(function (x) { return [x]; }),
      items.map(function (d) {
        var st = d.status || "unknown";
        return h("tr", { "data-device": d.device_id },
          h("th", { scope: "row" }, link(sc.ui + "/devices/" + encodeURIComponent(d.device_id), d.serial || d.device_id, { class: "device-link" })),
          h("td", {}, d.model || "—"),
          h("td", {}, h("span", { class: "badge " + st }, t("st_" + st))), h("td", {}, when(d.last_contact, l)),
          h("td", {}, d.firmware_version || "—"), h("td", {}, d.definitions_version || "—"), h("td", { class: "num" }, d.clients === undefined ? "—" : d.clients));
      })));
  });
}

export function devicePage(sc, id) {
  page("deviceTitle");
  customerBar(sc, "devices");
  main().appendChild(h("p", {}, link(sc.ui + "/devices", "← " + t("backToDevices"), { id: "back-to-devices" })));
  return api("GET", sc.api + "/devices").then(function (r) {
    if (failed(r)) return;
    var items = r.data.items || [];
    var d = items.filter(function (x) { return x.device_id === id; })[0];
    if (!d) {
      main().appendChild(empty("no-device", t(items.length ? "deviceNotFound" : "noDevices")));
      return;
    }
    var st = d.status || "unknown";
    var rows = [["f_device_id", "device_id", d.device_id], ["serial", "serial", d.serial], ["model", "model", d.model],
      ["lastContact", "last_contact", when(d.last_contact, lang())], ["firmware", "firmware_version", d.firmware_version],
      ["definitions", "definitions_version", d.definitions_version], ["clients", "clients", d.clients]];
    main().appendChild(h("section", { class: "card", id: "device-detail", "data-device": d.device_id, "aria-labelledby": "device-serial" },
      h("h2", { id: "device-serial" }, d.serial || d.device_id),
      h("p", { id: "device-status" }, h("span", { class: "badge " + st }, t("st_" + st)), " ", t("stHint_" + st)),
      h("dl", { class: "evidence" }, rows.map(function (x) {
        var v = x[2] === undefined || x[2] === null || x[2] === "" ? "—" : String(x[2]);
        return [h("dt", {}, t(x[0])), h("dd", { "data-field": x[1] }, v)];
      })),
      h("div", { class: "actions" }, link(sc.ui + "/alerts?device=" + encodeURIComponent(d.device_id), t("deviceAlerts"), { class: "button", id: "device-alerts" }))));
  });
}
