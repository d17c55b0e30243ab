// Enrolment of the second factor (an app or SMS) and its recovery codes:
// at the first login, or from the settings (session.enrolFrom).
import { h, field, form, showError } from "../dom.js";
import { t } from "../texts.js";
import { api, errText } from "../api.js";
import { session } from "../state.js";
import { main, page, go, chrome, focusTitle } from "../shell.js";
import { errorBox, errorBanner } from "../components/error.js";
import { afterStage } from "./login.js";

export function chooseFactor() {
  var me = session.me;
  page(session.enrolFrom === "settings" && session.replacing ? "replaceTitle" : "chooseTitle");
  var err = errorBox("decline-error");
  var choices = h("div", { class: "actions" },
    h("button", { type: "button", id: "choose-totp", onclick: totpEnrol }, t("chooseTOTP")),
    h("button", { type: "button", id: "choose-sms", class: "secondary", onclick: smsEnrol }, t("chooseSMS")));
  if (session.enrolFrom === "settings") {
    // Later, from the settings: declining again means going back. A
    // replacement says that the current factor stands until the new one
    // is confirmed.
    main().appendChild(h("div", { class: "card narrow" }, h("p", {}, t("chooseHint")),
      session.replacing ? h("p", { class: "hint", id: "replace-hint" }, t("replaceHint")) : null, choices,
      h("div", { class: "decline" }, h("button", { type: "button", id: "enrol-cancel", class: "linkish", onclick: function () { go("/settings"); } }, t("cancel")))));
    return;
  }
  if (me.second_factor_required) {
    // Operators may not decline it: no "not now" to offer.
    main().appendChild(h("div", { class: "card narrow" }, h("p", {}, t("chooseHint")),
      h("p", { class: "hint", id: "factor-required" }, t("factorRequiredHint")), choices));
    return;
  }
  main().appendChild(h("div", { class: "card narrow" }, h("p", {}, t("chooseHint")), choices,
    // Declining is allowed but not encouraged: a quiet link-like
    // button below the two choices, with the risk stated next to it.
    h("div", { class: "decline" },
      h("p", { class: "hint", id: "decline-warning" }, t("declineWarning")),
      h("button", { type: "button", id: "decline", class: "linkish", "aria-describedby": "decline-warning", onclick: function (e) {
        var b = e.currentTarget;
        b.disabled = true;
        api("POST", "/api/v1/2fa/decline", {}).then(function (r) {
          b.disabled = false;
          if (r.ok) afterStage(r.data.account); else err.textContent = errText(r);
        });
      } }, t("declineButton")), err)));
}
function backButton() { return h("button", { type: "button", class: "secondary", onclick: function () { chooseFactor(); focusTitle(); } }, t("back")); }

function totpEnrol() {
  return api("POST", "/api/v1/2fa/totp/enrol", { replace: session.replacing }).then(function (r) {
    page("totpTitle");
    if (!r.ok) {
      main().appendChild(h("div", { class: "card narrow" }, errorBanner(errText(r)), h("div", { class: "actions" }, backButton())));
      return focusTitle();
    }
    var en = r.data;
    main().appendChild(form("totp-form", function (f) {
      return api("POST", "/api/v1/2fa/totp/confirm", { code: f.elements.code.value.trim() })
        .then(function (r) { if (r.ok) recovery(r.data); else showError(f, r); });
    }, h("p", {}, t("totpStep1")),
      h("img", { id: "totp-qr", class: "qr", alt: t("qrAlt"), src: "data:image/png;base64," + en.qr_png, width: "200", height: "200" }),
      h("p", {}, t("totpStep2"), " ", h("code", { id: "totp-secret", class: "secret" }, en.secret)),
      h("p", {}, t("totpStep3")),
      field("code", "code", h("input", { name: "code", autocomplete: "one-time-code", inputmode: "numeric", pattern: "[0-9]*", maxlength: "6", required: true })),
      errorBox(), h("div", { class: "actions" }, h("button", { type: "submit", id: "totp-submit" }, t("confirm")), backButton())));
    focusTitle();
  });
}

function smsEnrol() {
  page("smsTitle");
  var codeForm = form("sms-code-form", function (f) {
    return api("POST", "/api/v1/2fa/sms/verify", { code: f.elements.code.value.trim() })
      .then(function (r) { if (r.ok) recovery(r.data); else showError(f, r); });
  }, field("sms-code", "code", h("input", { name: "code", autocomplete: "one-time-code", inputmode: "numeric", required: true }), "smsCodeHint"),
    errorBox("sms-code-error"), h("button", { type: "submit" }, t("confirm")));
  codeForm.hidden = true;
  main().appendChild(form("sms-form", function (f) {
    return api("POST", "/api/v1/2fa/sms/enrol", { phone: f.elements.phone.value.trim(), replace: session.replacing }).then(function (r) {
      if (!r.ok) return showError(f, r);
      showError(f, t("codeSent"));
      codeForm.hidden = false;
      codeForm.elements.code.focus();
    });
  }, field("phone", "phone", h("input", { name: "phone", type: "tel", autocomplete: "tel", required: true }), "phoneHint"),
    errorBox("sms-error"), h("div", { class: "actions" }, h("button", { type: "submit" }, t("sendCode")), backButton())));
  main().appendChild(codeForm);
  focusTitle();
}

// recovery shows the recovery codes of an enrolment, or (codesOnly) the
// new set asked for in the settings, this once.
export function recovery(data, codesOnly) {
  session.me = data.account;
  chrome();
  page("recoveryTitle");
  var renewed = codesOnly || session.replacing;
  main().appendChild(h("div", { class: "card narrow" }, h("p", {}, t("recoveryHint")),
    renewed ? h("p", { class: "warning", id: "recovery-old-void" }, t("recoveryOldVoid")) : null,
    h("ol", { class: "codes", id: "recovery-codes" }, (data.recovery_codes || []).map(function (c) { return h("li", {}, c); })),
    h("button", { type: "button", id: "continue", onclick: function () {
      if (session.enrolFrom !== "settings") return afterStage(session.me);
      session.flash = codesOnly ? { id: "codes-done", key: "codesDone" } : session.replacing ? { id: "factor-replaced", key: "factorReplaced" } : { id: "factor-done", key: "factorDone" };
      session.enrolFrom = "login";
      session.replacing = false;
      go("/settings", true);
    } }, t(session.enrolFrom === "settings" ? "backToSettings" : "continue"))));
  focusTitle();
}
