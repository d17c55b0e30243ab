// customerBar names the customer an operator is reading in the page's
// title (where the focus lands) and links that customer's pages.
import { h, add, link } from "../dom.js";
import { t } from "../texts.js";
import { api } from "../api.js";
import { session } from "../state.js";
import { main } from "../shell.js";

// loadCustomers reads the operator's customers and keeps their names.
export function loadCustomers() {
  return api("GET", "/api/v1/operator/customers").then(function (r) {
    if (r.ok) (r.data.items || []).forEach(function (c) { session.names[c.customer_id] = c.name; });
    return r;
  });
}

export function customerBar(sc, current) {
  if (sc.own) return;
  var names = session.names;
  var h1 = document.getElementById("page-title");
  var name = h("span", { id: "customer-name" }, names[sc.customer] || sc.customer);
  add(h1, [" — ", name]);
  function retitle() { if (name.isConnected) document.title = h1.textContent + " — " + t("title"); }
  retitle();
  if (!names[sc.customer]) loadCustomers().then(function () { if (names[sc.customer]) { name.textContent = names[sc.customer]; retitle(); } });
  main().appendChild(h("p", { class: "crumbs" }, link("/operator", "← " + t("backToCustomers"), { id: "back-to-customers" }),
    " ", h("span", { class: "hint" }, t("customerID"), ": ", sc.customer)));
  main().appendChild(h("nav", { class: "subnav", id: "customer-nav", "aria-label": t("customerPages") },
    [["", "accounts", "navAccounts"], ["/summary", "summary", "navDashboard"], ["/alerts", "alerts", "navAlerts"],
      ["/devices", "devices", "navDevices"], ["/notices", "notices", "navNotices"]].map(function (p) {
      return link(sc.ui + p[0], t(p[2]), { id: "customer-nav-" + p[1], "aria-current": p[1] === current ? "page" : null });
    })));
}
