// A customer's accounts, for an operator: never a secret (the API has none
// to give); it lifts locks and asks for more accounts, whose credentials go
// by mail to the customer, never to this page.
import { h, field } from "../dom.js";
import { t } from "../texts.js";
import { api, errText } from "../api.js";
import { session } from "../state.js";
import { main, page } from "../shell.js";
import { failed } from "../components/error.js";
import { empty } from "../components/empty.js";
import { table } from "../components/table.js";
import { customerBar } from "../components/customer-bar.js";

function wait(ms) { return new Promise(function (res) { setTimeout(res, ms); }); }

export function accountsPage(sc) {
  page("accountsTitle");
  customerBar(sc, "accounts");
  var status = h("p", { id: "account-status", class: "flash", role: "status", tabindex: "-1" });
  var list = h("div", { id: "accounts" });
  var shown = [];
  function say(text, bad) { status.className = bad ? "error" : "flash"; status.textContent = text; }
  function fetchAccounts() { return api("GET", sc.api + "/accounts"); }
  // refresh reads the accounts until done(items) holds (the owner applies
  // requests and unlocks a moment after the API accepted them), then shows
  // them; it resolves to whether done held.
  function refresh(done, tries) {
    return fetchAccounts().then(function (r) {
      if (!r.ok) { say(errText(r), true); return false; }
      var items = r.data.items || [];
      if (!done(items) && tries > 0 && list.isConnected) return wait(500).then(function () { return refresh(done, tries - 1); });
      if (list.isConnected) render(items);
      return done(items);
    });
  }
  function unlockButton(a) {
    return h("button", { type: "button", class: "secondary unlock", "aria-label": t("unlockFor", { id: a.login_id }), onclick: function (e) {
      var b = e.currentTarget;
      b.disabled = true;
      api("POST", sc.api + "/accounts/" + encodeURIComponent(a.account_id) + "/unlock", {}).then(function (r) {
        if (!r.ok) { b.disabled = false; say(errText(r), true); return; }
        say(t("unlockSent", { id: a.login_id }));
        status.focus(); // the button goes away with the lock
        return refresh(function (items) {
          return items.some(function (x) { return x.account_id === a.account_id && !x.locked; });
        }, 20).then(function (ok) { if (ok) say(t("unlockDone", { id: a.login_id })); });
      });
    } }, t("unlock"));
  }
  function render(items) {
    shown = items;
    list.textContent = "";
    if (!items.length) { list.appendChild(empty("no-accounts", t("noAccounts"))); return; }
    // On a phone: the user ID, the state and the lock (with its button).
    list.appendChild(table("account-table",
      [[t("loginID")], [t("role"), "hide-sm"], [t("accountState")], [t("secondFactor"), "hide-sm"], [t("lock")]],
      items.map(function (a) {
        var role = t("role_" + a.role) === "role_" + a.role ? a.role : t("role_" + a.role);
        return h("tr", { "data-account": a.account_id, "data-login": a.login_id, "data-locked": a.locked ? "true" : "false" },
          h("th", { scope: "row" }, a.login_id), h("td", { class: "hide-sm" }, role),
          h("td", {}, t(a.temporary ? "stateTemporary" : "stateActive")),
          h("td", { class: "hide-sm" }, t("factor_" + (a.second_factor || "unset"))),
          h("td", {}, a.locked ? [h("span", { class: "badge locked" }, t("locked")), " ", unlockButton(a)] : h("span", { class: "badge online" }, t("notLocked"))));
      })));
  }
  // An operator account belongs to the operator's own organisation only.
  var own = session.me && sc.customer === session.me.customer_id;
  var addForm = h("form", { id: "add-account-form", class: "card", "aria-labelledby": "h-add", novalidate: true },
    h("h2", { id: "h-add" }, t("addAccount")),
    h("p", { class: "hint", id: "add-account-hint" }, t("addAccountHint")),
    own ? field("new-role", "role", h("select", { name: "role" }, ["customer_admin", "operator"].map(function (x) {
      return h("option", { value: x }, t("role_" + x));
    }))) : null,
    h("button", { type: "submit", id: "add-account", "aria-describedby": "add-account-hint" }, t("addAccountButton")));
  addForm.addEventListener("submit", function (e) {
    e.preventDefault();
    var btn = addForm.querySelector("button[type=submit]"), before = shown.length;
    btn.disabled = true;
    api("POST", sc.api + "/accounts", { role: own ? addForm.elements.role.value : "customer_admin" }).then(function (r) {
      if (!r.ok) { btn.disabled = false; say(errText(r), true); return; }
      say(t("accountRequested"));
      return refresh(function (items) { return items.length > before; }, 20).then(function (ok) {
        btn.disabled = false;
        if (ok) say(t("accountIssued"));
      });
    });
  });
  var tools = h("div", { class: "actions" }, h("button", { type: "button", class: "secondary", id: "reload-accounts", onclick: function () {
    say("");
    refresh(function () { return true; }, 0);
  } }, t("reload")));
  var m = main();
  m.appendChild(status);
  m.appendChild(list);
  m.appendChild(tools);
  m.appendChild(addForm);
  return fetchAccounts().then(function (r) {
    if (failed(r)) { tools.hidden = addForm.hidden = true; return; }
    render(r.data.items || []);
  });
}
