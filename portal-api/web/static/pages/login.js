// The login: user ID and password, the first change of both, the second
// factor; then the page the session was heading for.
import { h, add, link, field, form, showError, message } from "../dom.js";
import { t } from "../texts.js";
import { api, errText } from "../api.js";
import { session } from "../state.js";
import { main, page, go, chrome, focusTitle } from "../shell.js";
import { errorBox } from "../components/error.js";
import { chooseFactor } from "./factor.js";

// afterStage continues the login with the principal p the API answered.
export function afterStage(p) {
  session.me = p;
  if (p.stage === "active") {
    var next = sessionStorage.getItem("mimamori.next") || (p.role === "operator" ? "/operator" : "/");
    sessionStorage.removeItem("mimamori.next");
    return go(next, true);
  }
  chrome();
  loginPage();
  focusTitle();
}

export function loginPage(note) {
  var me = session.me;
  if (!me) {
    page("loginTitle");
    add(main(), message(note));
    main().appendChild(form("login-form", function (f) {
      return api("POST", "/api/v1/login", { login_id: f.elements["login-id"].value, password: f.elements.password.value })
        .then(function (r) { if (r.ok) afterStage(r.data); else showError(f, r); });
    }, h("p", { class: "hint" }, t("loginHint")),
      field("login-id", "loginID", h("input", { name: "login-id", autocomplete: "username", required: true, autocapitalize: "none", spellcheck: "false" })),
      field("password", "password", h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
      errorBox(), h("button", { type: "submit", id: "login-submit" }, t("loginButton")),
      h("p", { class: "aside" }, link("/reset", t("forgotLink"), { id: "forgot-link" }))));
    return;
  }
  if (me.stage === "change_credentials") {
    page("changeTitle");
    main().appendChild(form("change-form", function (f) {
      var p1 = f.elements["new-password"].value;
      if (p1 !== f.elements["new-password2"].value) return showError(f, t("passwordsDiffer"));
      return api("POST", "/api/v1/login/credentials", { login_id: f.elements["new-login-id"].value, password: p1 })
        .then(function (r) { if (r.ok) afterStage(r.data); else showError(f, r); });
    }, h("p", { class: "hint" }, t("changeHint")),
      field("new-login-id", "newLoginID", h("input", { name: "new-login-id", autocomplete: "username", required: true, autocapitalize: "none" }), "newLoginIDHint"),
      field("new-password", "newPassword", h("input", { name: "new-password", type: "password", autocomplete: "new-password", minlength: "12", required: true }), "newPasswordHint"),
      field("new-password2", "newPassword2", h("input", { name: "new-password2", type: "password", autocomplete: "new-password", required: true })),
      errorBox(), h("button", { type: "submit", id: "change-submit" }, t("save"))));
    return;
  }
  if (me.stage === "choose_second_factor") { session.enrolFrom = "login"; session.replacing = false; return chooseFactor(); }
  if (me.stage === "second_factor") {
    page("secondTitle");
    var sms = me.second_factor === "sms";
    var f = form("second-form", function (f) {
      return api("POST", "/api/v1/login/second-factor", { code: f.elements.code.value.trim() })
        .then(function (r) { if (r.ok) afterStage(r.data.account); else showError(f, r); });
    }, h("p", { class: "hint" }, t(sms ? "secondHintSMS" : "secondHintTOTP")),
      field("code", "code", h("input", { name: "code", autocomplete: "one-time-code", inputmode: "text", required: true })),
      errorBox(), h("div", { class: "actions" }, h("button", { type: "submit", id: "second-submit" }, t("confirm")),
        sms ? h("button", { type: "button", class: "secondary", id: "send-sms", onclick: function () {
          api("POST", "/api/v1/login/second-factor/sms", {}).then(function (r) { showError(f, r.ok ? t("codeSent") : errText(r)); });
        } }, t("sendSMS")) : null));
    main().appendChild(f);
  }
}
