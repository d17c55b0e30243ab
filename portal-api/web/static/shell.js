// The page around the pages: the header (language, logout, menu), the
// title and the history routing. app.js sets what renders an address.
import { t, lang } from "./texts.js";
import { h, link } from "./dom.js";
import { session } from "./state.js";
import { destroyCharts } from "./components/chart.js";
import { activeNav } from "./lib/routes.js";

var render = function () {};
export function onNavigate(f) { render = f; }

export function main() { return document.getElementById("main"); }

// go shows path, as a new history entry or (replace) in place of this one.
export function go(path, replace) {
  if (replace) history.replaceState(null, "", path); else history.pushState(null, "", path);
  return render();
}

// page starts a page: an empty main with the title, which focusTitle
// focuses once the page is built.
export function page(titleKey) {
  destroyCharts();
  var m = main();
  m.textContent = "";
  var h1 = h("h1", { id: "page-title", tabindex: "-1" }, t(titleKey));
  m.appendChild(h1);
  document.title = t(titleKey) + " — " + t("title");
  return h1;
}
export function focusTitle() { var el = document.getElementById("page-title"); if (el) el.focus(); }

var NAV = [["/", "navDashboard"], ["/alerts", "navAlerts"], ["/devices", "navDevices"], ["/compare", "navCompare"], ["/notices", "navNotices"],
  ["/settings", "navSettings"]];

// chrome sets the header for the language and the session.
export function chrome() {
  var me = session.me, l = lang();
  document.documentElement.lang = l;
  document.getElementById("skip").textContent = t("skip");
  var lb = document.getElementById("lang");
  lb.textContent = t("switchLang");
  lb.setAttribute("lang", l === "ja" ? "en" : "ja");
  var lo = document.getElementById("logout");
  lo.textContent = t("logout");
  var active = me && me.stage === "active";
  lo.hidden = !me;
  var nav = document.getElementById("nav");
  nav.setAttribute("aria-label", t("menu"));
  nav.hidden = !active;
  nav.textContent = "";
  if (active) {
    var path = location.pathname;
    NAV.forEach(function (p) {
      nav.appendChild(link(p[0], t(p[1]), { "aria-current": activeNav(p[0], path) ? "page" : null }));
    });
    // The operator's pages, for operator accounts only (the API refuses
    // them to anyone else anyway).
    if (me.role === "operator") {
      nav.appendChild(h("span", { class: "sep", "aria-hidden": "true" }, "|"));
      nav.appendChild(link("/operator", t("navCustomers"), { id: "nav-customers", class: "op",
        "aria-current": path === "/operator" || path.indexOf("/operator/customers/") === 0 ? "page" : null }));
      nav.appendChild(link("/operator/notices", t("navPublish"), { id: "nav-publish", class: "op",
        "aria-current": path === "/operator/notices" ? "page" : null }));
    }
  }
}
