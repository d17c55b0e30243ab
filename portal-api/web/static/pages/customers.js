// The operator's list of customers: locked accounts first, a search
// within the list.
import { h, link, field } from "../dom.js";
import { t, lang } from "../texts.js";
import { main, page } from "../shell.js";
import { failed } from "../components/error.js";
import { empty } from "../components/empty.js";
import { table } from "../components/table.js";
import { loadCustomers } from "../components/customer-bar.js";

export function customersPage() {
  page("customersTitle");
  return loadCustomers().then(function (r) {
    if (failed(r)) return;
    var items = (r.data.items || []).slice();
    if (!items.length) { main().appendChild(empty("no-customers", t("noCustomers"))); return; }
    // Locked accounts wait for an operator: their customers come first.
    var l = lang();
    items.sort(function (a, b) { return (b.open_locks || 0) - (a.open_locks || 0) || String(a.name).localeCompare(String(b.name), l); });
    var rows = items.map(function (c) {
      var locks = c.open_locks || 0;
      var row = h("tr", { "data-customer": c.customer_id },
        h("th", { scope: "row" }, link("/operator/customers/" + encodeURIComponent(c.customer_id), c.name || c.customer_id, { class: "customer-link" })),
        h("td", { class: "hide-sm" }, c.customer_id),
        h("td", { class: "num" }, c.devices), h("td", { class: "num" }, c.alerts_30d),
        h("td", { class: "num", "data-field": "open_locks" }, locks ? h("span", { class: "badge locked" }, t("locksN", { n: locks })) : "0"));
      row.searchText = ((c.name || "") + " " + c.customer_id).toLowerCase();
      return row;
    });
    var count = h("p", { class: "hint", id: "customer-count", role: "status" }, t("customersN", { n: items.length }));
    var search = h("input", { type: "search", name: "q", autocomplete: "off", oninput: function () {
      var q = search.value.trim().toLowerCase(), n = 0;
      rows.forEach(function (row) { row.hidden = q !== "" && row.searchText.indexOf(q) < 0; if (!row.hidden) n++; });
      count.textContent = n ? t("customersN", { n: n }) : t("noCustomerMatch");
    } });
    main().appendChild(h("form", { class: "period", role: "search", onsubmit: function (e) { e.preventDefault(); } },
      field("customer-q", "findCustomer", search, "findCustomerHint")));
    main().appendChild(count);
    main().appendChild(table("customer-table",
      [[t("customerName")], [t("customerID"), "hide-sm"], [t("devicesN"), "num"], [t("alerts30d"), "num"], [t("openLocks"), "num"]], rows));
  });
}
