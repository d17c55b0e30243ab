// mimamori customer portal: a small single-page application on the portal
// API (/api/v1), in ES modules served as they are (no build step). This is
// the entry: it loads the texts, then renders the page of each address by
// the route table (lib/routes.js) and keeps the header's buttons and the
// history routing going.
import { t, lang, setLang, loadTexts } from "./texts.js";
import { api } from "./api.js";
import { session } from "./state.js";
import { main, page, go, chrome, focusTitle, onNavigate } from "./shell.js";
import { resolve } from "./lib/routes.js";
import { ownScope, customerScope } from "./lib/scope.js";
import { errorBanner } from "./components/error.js";
import { loginPage } from "./pages/login.js";
import { takeResetToken, resetRequestPage, resetConfirmPage } from "./pages/reset.js";
import { dashboard } from "./pages/dashboard.js";
import { alertsPage, alertPage } from "./pages/alerts.js";
import { devicesPage, devicePage } from "./pages/devices.js";
import { comparePage } from "./pages/compare.js";
import { noticesPage, noticePage } from "./pages/notices.js";
import { settingsPage } from "./pages/settings.js";
import { customersPage } from "./pages/customers.js";
import { accountsPage } from "./pages/accounts.js";
import { publishPage } from "./pages/publish.js";

// PAGES render the route table's pages: sc is whose data the page shows,
// params the address's, note the flash for the next page.
var PAGES = {
  resetRequest: resetRequestPage,
  resetConfirm: resetConfirmPage,
  login: function (sc, params, note) { return loginPage(note); },
  dashboard: function (sc) { return dashboard(sc); },
  alerts: function (sc) { return alertsPage(sc); },
  alert: function (sc, params) { return alertPage(sc, params.id); },
  devices: function (sc) { return devicesPage(sc); },
  device: function (sc, params) { return devicePage(sc, params.id); },
  compare: comparePage,
  notices: function (sc) { return noticesPage(sc); },
  notice: function (sc, params) { return noticePage(sc, params.id); },
  settings: function (sc, params, note) { return settingsPage(note); },
  customers: customersPage,
  publish: publishPage,
  accounts: function (sc) { return accountsPage(sc); },
  operatorOnly: function () {
    page("notFound");
    main().appendChild(errorBanner(t("operatorOnly")));
  },
  notFound: function () { page("notFound"); }
};

// route renders the page of the current address.
function route() {
  var path = location.pathname;
  var note = session.flash;
  session.flash = null;
  return api("GET", "/api/v1/me").then(function (r) {
    session.me = r.ok ? r.data : null;
    chrome();
    var to = resolve(path, session.me, !!session.resetToken);
    if (to.remember) sessionStorage.setItem("mimamori.next", path + location.search);
    if (to.replace) {
      history.replaceState(null, "", to.replace);
      if (to.page !== "login") chrome(); // the menu marks the page shown
    }
    var sc = to.route && to.route.scope === "customer" ? customerScope(to.params.customer) : ownScope();
    return PAGES[to.page](sc, to.params, note);
  }).then(focusTitle);
}

onNavigate(route);

// Links marked data-link stay in the app.
document.addEventListener("click", function (e) {
  var a = e.target.closest && e.target.closest("a[data-link]");
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  go(a.getAttribute("href"));
});
window.addEventListener("popstate", route);
// A reset link opened where the reset page is already shown changes only
// the fragment: no page load, so take the token here.
window.addEventListener("hashchange", function () { if (takeResetToken()) route(); });

document.getElementById("lang").addEventListener("click", function () {
  setLang(lang() === "ja" ? "en" : "ja");
  route();
});
document.getElementById("logout").addEventListener("click", function () {
  api("POST", "/api/v1/logout", {}).then(function () {
    session.me = null;
    session.flash = { id: "logged-out", key: "loggedOut" };
    go("/login", true);
  });
});

takeResetToken();
loadTexts().then(route);
