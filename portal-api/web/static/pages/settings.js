// The settings: the password (the current one asked again) and 2-step
// verification: set it up (an account that declined it or turned it off),
// replace it, turn it off, get new recovery codes. Each change of 2-step
// verification starts with the password again; enrolling and replacing then
// go through the enrolment of the first login, and new recovery codes are
// shown once.
import { h, add, field, formOf, showError, message } from "../dom.js";
import { t } from "../texts.js";
import { api, errText } from "../api.js";
import { session } from "../state.js";
import { main, page, go, focusTitle } from "../shell.js";
import { errorBox, errorBanner } from "../components/error.js";
import { chooseFactor, recovery } from "./factor.js";

export function settingsPage(note) {
  page("settingsTitle");
  var box = h("div", { class: "settings" });
  main().appendChild(box);
  add(box, message(note));
  box.appendChild(h("section", { class: "card", "aria-labelledby": "h-account" }, h("h2", { id: "h-account" }, t("accountSection")),
    h("dl", { class: "evidence" }, h("dt", {}, t("loginID")), h("dd", { id: "settings-login-id" }, session.me.login_id))));

  var done = h("p", { id: "password-changed", class: "flash", role: "status", tabindex: "-1" });
  box.appendChild(h("section", { class: "card", "aria-labelledby": "h-password" }, h("h2", { id: "h-password" }, t("passwordSection")),
    h("p", { class: "hint", id: "password-section-hint" }, t("passwordSectionHint")),
    formOf("", "password-form", function (f) {
      var cur = f.elements["current-password"].value, p1 = f.elements["new-password"].value;
      done.textContent = "";
      showError(f, "");
      if (!cur) { showError(f, t("currentPasswordRequired")); return f.elements["current-password"].focus(); }
      if (!p1) { showError(f, t("passwordRequired")); return f.elements["new-password"].focus(); }
      if (p1 !== f.elements["new-password2"].value) { showError(f, t("passwordsDiffer")); return f.elements["new-password2"].focus(); }
      return api("POST", "/api/v1/account/password", { current_password: cur, new_password: p1 }).then(function (r) {
        if (!r.ok) return showError(f, r);
        session.me = r.data.account;
        f.reset();
        done.textContent = t("passwordChanged");
        done.focus();
      });
    }, [field("current-password", "currentPassword", h("input", { name: "current-password", type: "password", autocomplete: "current-password", required: true })),
      field("new-password", "newPassword", h("input", { name: "new-password", type: "password", autocomplete: "new-password", minlength: "12", required: true }), "newPasswordHint"),
      field("new-password2", "newPassword2", h("input", { name: "new-password2", type: "password", autocomplete: "new-password", required: true })),
      errorBox("password-error"), h("button", { type: "submit", id: "password-submit" }, t("changePasswordButton"))]),
    done));

  var fs = h("section", { class: "card", id: "factor-section", "aria-labelledby": "h-factor" }, h("h2", { id: "h-factor" }, t("secondFactor")));
  box.appendChild(fs);
  return api("GET", "/api/v1/account/second-factor").then(function (r) {
    if (r.status === 401) { session.me = null; return go("/login", true); }
    if (!r.ok) { fs.appendChild(errorBanner(errText(r))); return; }
    factorSection(fs, r.data);
  });
}

// factorSection shows the account's 2-step verification, the recovery
// codes left and the changes it may make.
function factorSection(fs, st) {
  var me = session.me, factor = st.second_factor, reauth = reauthForm(factor);
  function opens(id, cls, key, action) {
    var b = h("button", { type: "button", id: id, class: cls, onclick: function () { reauth.open(b, action); } }, t(key));
    return b;
  }
  if (factor !== "totp" && factor !== "sms") {
    fs.appendChild(h("p", { id: "factor-state", "data-factor": "none" }, h("span", { class: "badge offline" }, t("factorOff")), " ", t("factorOffHint")));
    fs.appendChild(h("div", { class: "actions" }, opens("factor-start", null, "factorStart", { submit: "reauthSubmit", run: enrol(false) })));
    fs.appendChild(reauth.form);
    return;
  }
  fs.appendChild(h("p", { id: "factor-state", "data-factor": factor }, h("span", { class: "badge online" }, t("factorOn")), " ",
    t(factor === "totp" ? "factorOnTOTP" : "factorOnSMS")));
  var left = st.recovery_codes_left || 0;
  fs.appendChild(h("p", { id: "codes-left", "data-left": String(left) }, t("codesLeft", { n: left }),
    left <= 3 ? [" ", h("strong", { class: "warn", id: "codes-few" }, t("codesFew"))] : null));
  // Each of these needs a code of the current factor besides the password
  // (factor); operators cannot turn it off, so it is not offered.
  fs.appendChild(h("div", { class: "actions", id: "factor-actions" },
    opens("factor-replace", null, "factorReplace", { hint: "replaceHint", submit: "reauthSubmit", factor: true, run: enrol(true) }),
    opens("codes-new", "secondary", "codesNew", { hint: "codesReauthHint", submit: "codesSubmit", factor: true, run: newCodes }),
    me.second_factor_required ? null :
      opens("factor-off", "secondary danger", "factorOffButton", { warn: "factorOffWarning", submit: "factorOffSubmit", danger: true, factor: true, run: turnOff })));
  if (me.second_factor_required) fs.appendChild(h("p", { class: "hint", id: "factor-required" }, t("factorRequiredHint")));
  fs.appendChild(reauth.form);
}

function enrol(replace) {
  return function () {
    session.enrolFrom = "settings";
    session.replacing = replace;
    chooseFactor();
    focusTitle();
  };
}

function newCodes(f) {
  return api("POST", "/api/v1/account/recovery-codes", {}).then(function (r) {
    if (!r.ok) return showError(f, r);
    session.enrolFrom = "settings";
    session.replacing = false;
    recovery(r.data, true);
  });
}

function turnOff(f) {
  return api("POST", "/api/v1/account/second-factor/disable", {}).then(function (r) {
    if (!r.ok) return showError(f, r);
    session.me = r.data.account;
    session.flash = { id: "factor-off-done", key: "factorOffDone" };
    return go("/settings", true);
  });
}

// reauthForm asks for the password again before a change of 2-step
// verification (the API admits such changes for 10 minutes after it): a
// session left open is not enough to put someone else's phone on the
// account or to turn the protection off. Turning it off, replacing it and
// new recovery codes (an action with factor) also need a code of the
// current factor (factor: "totp" or "sms", which can send one). One form
// serves every change of the section; open says which, with its hint or
// warning and its button.
function reauthForm(factor) {
  var action = null, opener = null;
  var warn = h("p", { id: "reauth-warning", class: "warning", hidden: true });
  var hint = h("p", { class: "hint", id: "reauth-hint" });
  var submit = h("button", { type: "submit", id: "reauth-submit" });
  var input = h("input", { name: "reauth-password", type: "password", autocomplete: "current-password", required: true });
  var code = h("input", { name: "reauth-code", autocomplete: "one-time-code", inputmode: "text", autocapitalize: "none", spellcheck: "false" });
  var codeField = field("reauth-code", "reauthCode", code, "reauthCodeHint");
  var sendSMS = factor === "sms" ? h("button", { type: "button", class: "secondary", id: "reauth-send-sms", onclick: function () {
    api("POST", "/api/v1/account/reauthenticate/sms", {}).then(function (r) { showError(f, r.ok ? t("codeSent") : errText(r)); });
  } }, t("reauthSendSMS")) : null;
  var f = formOf("", "reauth-form", function (f) {
    var pw = input.value, c = code.value.trim();
    showError(f, "");
    if (!pw) { showError(f, t("passwordRequired")); return input.focus(); }
    if (action.factor && !c) { showError(f, t("codeRequired")); return code.focus(); }
    return api("POST", "/api/v1/account/reauthenticate", action.factor ? { password: pw, code: c } : { password: pw }).then(function (r) {
      if (r.status === 401) { session.me = null; return go("/login", true); }
      if (!r.ok) return showError(f, r);
      input.value = "";
      code.value = "";
      return action.run(f);
    });
  }, [warn, hint, field("reauth-password", "currentPassword", input), codeField, errorBox("reauth-error"),
    h("div", { class: "actions" }, submit, sendSMS, h("button", { type: "button", class: "secondary", id: "reauth-cancel", onclick: function () {
      f.hidden = true;
      input.value = "";
      code.value = "";
      showError(f, "");
      opener.parentNode.hidden = false;
      opener.focus();
    } }, t("cancel")))]);
  f.hidden = true;
  return {
    form: f,
    open: function (button, a) {
      action = a;
      opener = button;
      warn.hidden = !a.warn;
      warn.textContent = a.warn ? t(a.warn) : "";
      codeField.hidden = !a.factor;
      if (sendSMS) sendSMS.hidden = !a.factor;
      var again = a.factor ? "reauthFactorHint" : "reauthHint";
      hint.textContent = t(a.hint || again) + (a.hint ? " " + t(again) : "");
      input.setAttribute("aria-describedby", a.warn ? "reauth-warning reauth-hint" : "reauth-hint");
      submit.textContent = t(a.submit);
      submit.className = a.danger ? "danger" : "";
      button.parentNode.hidden = true;
      f.hidden = false;
      input.focus();
    }
  };
}
