// The password reset: asking for the mailed link, and the new password
// with the link's token (session.resetToken).
import { h, link, field, form, showError } from "../dom.js";
import { t } from "../texts.js";
import { api } from "../api.js";
import { session } from "../state.js";
import { main, page, go } from "../shell.js";
import { errorBox } from "../components/error.js";

// takeResetToken moves the token of a reset link (/reset#token=…; links
// mailed before carry it in the query, /reset?token=…) off the address bar
// before any request is made, so it stays out of the history, of Referer
// headers and of screenshots; only session.resetToken keeps it. It says
// whether there was one.
export function takeResetToken() {
  if (location.pathname !== "/reset") return false;
  var tok = new URLSearchParams(location.hash.slice(1)).get("token") || new URLSearchParams(location.search).get("token");
  if (location.search || location.hash) history.replaceState(null, "", "/reset");
  if (tok) session.resetToken = tok;
  return !!tok;
}

// resetRequestPage asks for the user ID. The API answers alike whether the
// user exists or not, and so does the page.
export function resetRequestPage() {
  page("resetTitle");
  var sent = h("p", { id: "reset-sent", class: "flash", role: "status" });
  main().appendChild(form("reset-form", function (f) {
    var input = f.elements["reset-login-id"], id = input.value.trim();
    showError(f, "");
    sent.textContent = "";
    if (!id) { showError(f, t("loginIDRequired")); input.focus(); return; }
    return api("POST", "/api/v1/password-reset", { login_id: id }).then(function (r) {
      if (r.ok) sent.textContent = t("resetSent"); else showError(f, r);
    });
  }, h("p", { class: "hint" }, t("resetHint")),
    field("reset-login-id", "loginID", h("input", { name: "reset-login-id", autocomplete: "username", required: true, autocapitalize: "none", spellcheck: "false" })),
    errorBox(), sent,
    h("div", { class: "actions" }, h("button", { type: "submit", id: "reset-submit" }, t("resetSend")),
      link("/login", t("backToLogin"), { class: "button secondary", id: "back-to-login" }))));
}

// resetConfirmPage sets the new password with the token of the mailed link.
export function resetConfirmPage() {
  page("resetNewTitle");
  var again = h("p", { id: "reset-again", hidden: true }, link("/reset", t("resetAgain")));
  main().appendChild(form("reset-confirm-form", function (f) {
    var p1 = f.elements["reset-password"].value;
    again.hidden = true;
    if (!p1) return showError(f, t("passwordRequired"));
    if (p1 !== f.elements["reset-password2"].value) return showError(f, t("passwordsDiffer"));
    return api("POST", "/api/v1/password-reset/confirm", { token: session.resetToken, password: p1 }).then(function (r) {
      if (r.ok) {
        session.resetToken = null;
        session.flash = { id: "reset-done", key: "resetDone" };
        return go("/login", true);
      }
      showError(f, r);
      if (r.data && r.data.error === "invalid_token") { session.resetToken = null; again.hidden = false; }
    });
  }, h("p", { class: "hint" }, t("resetNewHint")),
    field("reset-password", "newPassword", h("input", { name: "reset-password", type: "password", autocomplete: "new-password", minlength: "12", required: true }), "newPasswordHint"),
    field("reset-password2", "newPassword2", h("input", { name: "reset-password2", type: "password", autocomplete: "new-password", required: true })),
    errorBox(), again, h("button", { type: "submit", id: "reset-confirm-submit" }, t("save"))));
}
