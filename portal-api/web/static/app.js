// mimamori customer portal: a small single-page application on the portal
// API (/api/v1). No framework; every text goes through textContent, never
// innerHTML, so data from the API cannot inject markup.
"use strict";
(function () {
  var TEXT = window.MIMAMORI_TEXT;
  var lang = localStorage.getItem("mimamori.lang") === "en" ? "en" : "ja";
  var main = document.getElementById("main");
  var me = null; // the session's principal, or null
  var charts = []; // live uPlot instances, destroyed on navigation
  var flash = null; // {id, key}: a message for the next page (login, settings), shown once
  var names = {}; // customer ID → name, as the operator's list last showed them

  var enrolFrom = "login"; // where an enrolment of a second factor started: "login" or "settings"
  var replacing = false; // the enrolment from the settings replaces the account's factor

  // The token of a password reset link (/reset#token=…; links mailed before
  // carry it in the query, /reset?token=…) leaves the address bar before any
  // request is made, so it stays out of the history, of Referer headers and
  // of screenshots; only this variable keeps it.
  var resetToken = null;
  function takeResetToken() {
    if (location.pathname !== "/reset") return false;
    var tok = new URLSearchParams(location.hash.slice(1)).get("token") || new URLSearchParams(location.search).get("token");
    if (location.search || location.hash) history.replaceState(null, "", "/reset");
    if (tok) resetToken = tok;
    return !!tok;
  }
  takeResetToken();

  function t(key, vars) {
    var s = TEXT[lang][key];
    if (s === undefined) s = TEXT.ja[key] !== undefined ? TEXT.ja[key] : key;
    if (vars) Object.keys(vars).forEach(function (k) { s = s.split("{" + k + "}").join(String(vars[k])); });
    return s;
  }
  function pick(o) { return o ? (o[lang] || o.ja || o.en || "") : ""; }

  // h builds an element: h("a", {href: "/"}, "text", child…).
  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k.slice(0, 2) === "on") el.addEventListener(k.slice(2), v);
      else if (k === "text") el.textContent = v;
      else el.setAttribute(k, v === true ? "" : v);
    });
    for (var i = 2; i < arguments.length; i++) add(el, arguments[i]);
    return el;
  }
  function add(el, c) {
    if (c === null || c === undefined || c === false) return;
    if (Array.isArray(c)) { c.forEach(function (x) { add(el, x); }); return; }
    el.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }

  // api calls the portal; state-changing calls are same-origin JSON.
  // retryAfter is the seconds a refusal that passes with time (429) says
  // to wait, or null.
  function api(method, path, body) {
    var opt = { method: method, credentials: "same-origin", headers: { "Accept": "application/json", "Accept-Language": lang } };
    if (method !== "GET") { opt.headers["Content-Type"] = "application/json"; opt.body = JSON.stringify(body || {}); }
    return fetch(path, opt).then(function (r) {
      return r.text().then(function (txt) {
        var data = null;
        try { data = txt ? JSON.parse(txt) : null; } catch (e) { data = null; }
        return { status: r.status, ok: r.ok, data: data, retryAfter: retryAfter(r.headers.get("Retry-After")) };
      });
    }, function () { return { status: 0, ok: false, data: null, retryAfter: null }; });
  }
  // retryAfter reads a Retry-After header in seconds (the API sends no
  // dates): a whole number of at least 1, or null.
  function retryAfter(v) {
    if (!v || !/^\d+$/.test(v.trim())) return null;
    var n = parseInt(v, 10);
    return n > 0 ? n : null;
  }
  // retryText says when to try again: seconds under two minutes, then
  // minutes, then hours, rounded up so that a retry at the time said is
  // never refused.
  function retryText(secs) {
    if (secs === 1) return t("retryInOneSecond");
    if (secs < 120) return t("retryInSeconds", { n: secs });
    if (secs < 2 * 3600) return t("retryInMinutes", { n: Math.ceil(secs / 60) });
    return t("retryInHours", { n: Math.ceil(secs / 3600) });
  }
  // errText is the message of a refusal, with when to try again if it
  // passes with time (a throttled login, password or code).
  function errText(r) {
    var msg = (r.data && r.data.message) || t("genericError");
    if (r.status !== 429 || !r.retryAfter) return msg;
    // The API's own "wait a moment" gives way to the actual wait.
    var vague = lang === "ja" ? "しばらく待ってから再度お試しください。" : "Wait a moment and try again.";
    if (msg.indexOf(vague) >= 0) return msg.replace(vague, retryText(r.retryAfter));
    return msg + (lang === "ja" ? "" : " ") + retryText(r.retryAfter); // Japanese runs its sentences on
  }
  function errorBox(id) { return h("p", { id: id || "error", class: "error", role: "alert", "aria-live": "assertive" }); }

  // Navigation: history routing; links marked data-link stay in the app.
  function go(path, replace) {
    if (replace) history.replaceState(null, "", path); else history.pushState(null, "", path);
    route();
  }
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
  function link(href, text, attrs) { var o = attrs || {}; o.href = href; o["data-link"] = true; return h("a", o, text); }

  function page(titleKey) {
    charts.forEach(function (c) { c.destroy(); });
    charts = [];
    main.textContent = "";
    var h1 = h("h1", { id: "page-title", tabindex: "-1" }, t(titleKey));
    main.appendChild(h1);
    document.title = t(titleKey) + " — " + t("title");
    return h1;
  }
  function focusTitle() { var el = document.getElementById("page-title"); if (el) el.focus(); }

  function chrome() {
    document.documentElement.lang = lang;
    document.getElementById("skip").textContent = t("skip");
    var lb = document.getElementById("lang");
    lb.textContent = t("switchLang");
    lb.setAttribute("lang", lang === "ja" ? "en" : "ja");
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
      [["/", "navDashboard"], ["/alerts", "navAlerts"], ["/devices", "navDevices"], ["/compare", "navCompare"], ["/notices", "navNotices"],
        ["/settings", "navSettings"]]
        .forEach(function (p) {
          var cur = p[0] === "/" ? path === "/" : path.indexOf(p[0]) === 0;
          nav.appendChild(link(p[0], t(p[1]), { "aria-current": cur ? "page" : null }));
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
  document.getElementById("lang").addEventListener("click", function () {
    lang = lang === "ja" ? "en" : "ja";
    localStorage.setItem("mimamori.lang", lang);
    route();
  });
  document.getElementById("logout").addEventListener("click", function () {
    api("POST", "/api/v1/logout", {}).then(function () {
      me = null;
      flash = { id: "logged-out", key: "loggedOut" };
      go("/login", true);
    });
  });

  // route renders the page of the current address.
  function route() {
    var path = location.pathname;
    var note = flash;
    flash = null;
    return api("GET", "/api/v1/me").then(function (r) {
      me = r.ok ? r.data : null;
      chrome();
      // The reset pages are for people who cannot log in: any session may see them.
      if (path === "/reset") return resetToken ? resetConfirmPage() : resetRequestPage();
      if (!me || me.stage !== "active") {
        if (path !== "/login") {
          if (path !== "/") sessionStorage.setItem("mimamori.next", path + location.search);
          history.replaceState(null, "", "/login");
        }
        return loginPage(note);
      }
      if (path === "/login") { history.replaceState(null, "", "/"); path = "/"; chrome(); }
      var m, own = ownScope();
      if (path === "/") return dashboard(own);
      if (path === "/alerts") return alertsPage(own);
      if ((m = path.match(/^\/alerts\/([^/]+)$/))) return alertPage(own, decodeURIComponent(m[1]));
      if (path === "/devices") return devicesPage(own);
      if ((m = path.match(/^\/devices\/([^/]+)$/))) return devicePage(own, decodeURIComponent(m[1]));
      if (path === "/compare") return comparePage();
      if (path === "/notices") return noticesPage(own);
      if ((m = path.match(/^\/notices\/([^/]+)$/))) return noticePage(own, decodeURIComponent(m[1]));
      if (path === "/settings") return settingsPage(note);
      if (path === "/operator" || path.indexOf("/operator/") === 0) return operatorRoute(path);
      page("notFound");
    }).then(focusTitle);
  }

  // ---- login, first change, second factor ----
  function field(id, labelKey, input, hintKey) {
    input.id = id;
    var kids = [h("label", { for: id }, t(labelKey)), input];
    if (hintKey) { input.setAttribute("aria-describedby", id + "-hint"); kids.push(h("span", { id: id + "-hint", class: "hint" }, t(hintKey))); }
    return h("div", { class: "field" }, kids);
  }
  function form(id, onsubmit) {
    return formOf("card narrow", id, onsubmit, Array.prototype.slice.call(arguments, 2));
  }
  // formOf is a form of the given class whose submit button stays disabled
  // while onsubmit's promise runs.
  function formOf(cls, id, onsubmit, kids) {
    var f = h("form", { id: id, class: cls || null, novalidate: true }, kids);
    f.addEventListener("submit", function (e) {
      e.preventDefault();
      var btn = f.querySelector("button[type=submit]");
      if (btn) btn.disabled = true;
      Promise.resolve(onsubmit(f)).then(function () { if (btn) btn.disabled = false; });
    });
    return f;
  }
  function showError(f, r) { var el = f.querySelector(".error"); el.textContent = typeof r === "string" ? r : errText(r); }
  function afterStage(p) {
    me = p;
    if (p.stage === "active") {
      var next = sessionStorage.getItem("mimamori.next") || (p.role === "operator" ? "/operator" : "/");
      sessionStorage.removeItem("mimamori.next");
      return go(next, true);
    }
    chrome();
    loginPage();
    focusTitle();
  }

  // message shows a flash (a one-time confirmation) as a polite status.
  function message(note) {
    return note ? h("p", { id: note.id, class: "flash", role: "status" }, t(note.key)) : null;
  }

  function loginPage(note) {
    if (!me) {
      page("loginTitle");
      add(main, message(note));
      main.appendChild(form("login-form", function (f) {
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
      main.appendChild(form("change-form", function (f) {
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
    if (me.stage === "choose_second_factor") { enrolFrom = "login"; replacing = false; return chooseFactor(); }
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
      main.appendChild(f);
    }
  }

  function chooseFactor() {
    page(enrolFrom === "settings" && replacing ? "replaceTitle" : "chooseTitle");
    var err = errorBox("decline-error");
    var choices = h("div", { class: "actions" },
      h("button", { type: "button", id: "choose-totp", onclick: totpEnrol }, t("chooseTOTP")),
      h("button", { type: "button", id: "choose-sms", class: "secondary", onclick: smsEnrol }, t("chooseSMS")));
    if (enrolFrom === "settings") {
      // Later, from the settings: declining again means going back. A
      // replacement says that the current factor stands until the new one
      // is confirmed.
      main.appendChild(h("div", { class: "card narrow" }, h("p", {}, t("chooseHint")),
        replacing ? h("p", { class: "hint", id: "replace-hint" }, t("replaceHint")) : null, choices,
        h("div", { class: "decline" }, h("button", { type: "button", id: "enrol-cancel", class: "linkish", onclick: function () { go("/settings"); } }, t("cancel")))));
      return;
    }
    if (me.second_factor_required) {
      // Operators may not decline it: no "not now" to offer.
      main.appendChild(h("div", { class: "card narrow" }, h("p", {}, t("chooseHint")),
        h("p", { class: "hint", id: "factor-required" }, t("factorRequiredHint")), choices));
      return;
    }
    main.appendChild(h("div", { class: "card narrow" }, h("p", {}, t("chooseHint")), choices,
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
    return api("POST", "/api/v1/2fa/totp/enrol", { replace: replacing }).then(function (r) {
      page("totpTitle");
      if (!r.ok) {
        main.appendChild(h("div", { class: "card narrow" }, h("p", { class: "error", role: "alert" }, errText(r)), h("div", { class: "actions" }, backButton())));
        return focusTitle();
      }
      var en = r.data;
      main.appendChild(form("totp-form", function (f) {
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
    main.appendChild(form("sms-form", function (f) {
      return api("POST", "/api/v1/2fa/sms/enrol", { phone: f.elements.phone.value.trim(), replace: replacing }).then(function (r) {
        if (!r.ok) return showError(f, r);
        showError(f, t("codeSent"));
        codeForm.hidden = false;
        codeForm.elements.code.focus();
      });
    }, field("phone", "phone", h("input", { name: "phone", type: "tel", autocomplete: "tel", required: true }), "phoneHint"),
      errorBox("sms-error"), h("div", { class: "actions" }, h("button", { type: "submit" }, t("sendCode")), backButton())));
    main.appendChild(codeForm);
    focusTitle();
  }

  // recovery shows the recovery codes of an enrolment, or (codesOnly) the
  // new set asked for in the settings, this once.
  function recovery(data, codesOnly) {
    me = data.account;
    chrome();
    page("recoveryTitle");
    var renewed = codesOnly || replacing;
    main.appendChild(h("div", { class: "card narrow" }, h("p", {}, t("recoveryHint")),
      renewed ? h("p", { class: "warning", id: "recovery-old-void" }, t("recoveryOldVoid")) : null,
      h("ol", { class: "codes", id: "recovery-codes" }, (data.recovery_codes || []).map(function (c) { return h("li", {}, c); })),
      h("button", { type: "button", id: "continue", onclick: function () {
        if (enrolFrom !== "settings") return afterStage(me);
        flash = codesOnly ? { id: "codes-done", key: "codesDone" } : replacing ? { id: "factor-replaced", key: "factorReplaced" } : { id: "factor-done", key: "factorDone" };
        enrolFrom = "login";
        replacing = false;
        go("/settings", true);
      } }, t(enrolFrom === "settings" ? "backToSettings" : "continue"))));
    focusTitle();
  }

  // ---- period and helpers ----
  function query() { return new URLSearchParams(location.search); }
  function periodParams() {
    var q = query(), p = new URLSearchParams();
    ["from", "to"].forEach(function (k) { if (q.get(k)) p.set(k, q.get(k)); });
    return p;
  }
  function periodForm(from, to) {
    var f = h("form", { class: "period", id: "period-form", "aria-label": t("period") },
      field("period-from", "from", h("input", { name: "from", type: "date", value: from || "" })),
      field("period-to", "to", h("input", { name: "to", type: "date", value: to || "" })),
      h("button", { type: "submit", class: "secondary" }, t("show")));
    f.addEventListener("submit", function (e) {
      e.preventDefault();
      var q = query();
      ["from", "to"].forEach(function (k) { if (f.elements[k].value) q.set(k, f.elements[k].value); else q.delete(k); });
      q.delete("page");
      go(location.pathname + "?" + q.toString());
    });
    return f;
  }
  function stars(n) { n = Number(n) || 0; return "★★★".slice(0, n) + "☆☆☆".slice(0, 3 - n); }
  function sevLabel(n) { return h("span", { "aria-label": t("severity") + " " + n + "/3 " + t("sev" + n) }, h("span", { class: "stars", "aria-hidden": "true" }, stars(n)), " ", h("span", { class: "hide-sm" }, t("sev" + n))); }
  function when(s) {
    if (!s) return "—";
    var d = new Date(s);
    if (isNaN(d) || d.getTime() <= 0) return "—";
    return d.toLocaleString(lang === "ja" ? "ja-JP" : "en-GB", { dateStyle: "medium", timeStyle: "medium" });
  }
  function failed(r) {
    if (r.status === 401) { me = null; go("/login", true); return true; }
    if (!r.ok) { main.appendChild(h("p", { class: "error", role: "alert" }, r.status === 404 ? t("notFound") : errText(r))); return true; }
    return false;
  }
  var KINDS = ["domain", "ip", "url", "file", "behaviour"];

  // A scope is whose dashboards a page shows: the session's own customer,
  // or (for an operator) one customer read through /api/v1/operator/….
  // api is the base of the API paths, ui the base of the page addresses.
  function ownScope() { return { api: "/api/v1", summary: "/api/v1/dashboard/summary", ui: "", own: true }; }
  function customerScope(id) {
    var base = "/operator/customers/" + encodeURIComponent(id);
    return { api: "/api/v1" + base, summary: "/api/v1" + base + "/summary", ui: base, own: false, customer: id };
  }

  // ---- dashboard ----
  function dashboard(sc) {
    page("dashTitle");
    customerBar(sc, "summary");
    var pp = periodParams();
    return api("GET", sc.summary + "?" + pp).then(function (r) {
      if (failed(r)) return;
      var s = r.data;
      main.appendChild(periodForm(s.from, s.to));
      if (!s.devices) {
        main.appendChild(h("section", { class: "card status", id: "empty-state" }, h("p", { class: "headline" }, pick(s.empty_state) || t("noDevices"))));
        return;
      }
      var q = new URLSearchParams({ from: s.from, to: s.to });
      var important = new URLSearchParams(q); important.set("severity", "3,2");
      main.appendChild(h("section", { class: "card status" + (s.problems_found ? " bad" : ""), id: "status", "aria-labelledby": "status-headline" },
        h("p", { class: "headline", id: "status-headline" }, pick(s.message) || t(s.problems_found ? "dashTitle" : "noProblem")),
        h("p", { id: "status-period" }, t("periodText", { from: s.from, to: s.to })),
        h("ul", { class: "counts" },
          h("li", {}, h("span", { class: "n", id: "count-important" }, s.important), t("important")),
          h("li", {}, h("span", { class: "n", id: "count-total" }, s.total), t("total")),
          h("li", {}, h("span", { class: "n" }, s.devices), t("devicesN"))),
        h("div", { class: "actions" },
          link(sc.ui + "/alerts?" + important, t("checkProblems"), { class: "button", id: "link-problems" }),
          link(sc.ui + "/alerts?" + q, t("checkDetails"), { class: "button secondary", id: "link-details" }))));
      var sev = s.by_severity || {}, kind = s.by_kind || {};
      main.appendChild(h("div", { class: "grid" },
        h("section", { class: "card", "aria-labelledby": "h-sev" }, h("h2", { id: "h-sev" }, t("bySeverity")),
          h("ul", { class: "counts", id: "by-severity" }, [3, 2, 1].map(function (n) {
            var sq = new URLSearchParams(q); sq.set("severity", String(n));
            return h("li", {}, link(sc.ui + "/alerts?" + sq, [h("span", { class: "n" }, sev[n] || 0), sevLabel(n)]));
          }))),
        h("section", { class: "card", "aria-labelledby": "h-kind" }, h("h2", { id: "h-kind" }, t("byKind")),
          h("ul", { class: "counts", id: "by-kind" }, KINDS.map(function (k) {
            var kq = new URLSearchParams(q); kq.set("kind", k);
            return h("li", {}, link(sc.ui + "/alerts?" + kq, [h("span", { class: "n" }, kind[k] || 0), t("kind_" + k)]));
          })))));
      // The comparisons exist for the session's own customer only.
      if (sc.own) return compareSections(q, false);
    });
  }

  // ---- comparison charts ----
  function dayTS(d) { var p = String(d).split("-"); return Date.UTC(+p[0], +p[1] - 1, +p[2]) / 1000; }
  var PALETTE = ["#0b5cad", "#d1495b", "#2e933c", "#edae49", "#6a4c93", "#00798c", "#8d6a9f", "#c05746"];
  function chart(box, label, days, series) {
    box.setAttribute("role", "img");
    box.setAttribute("aria-label", label);
    if (typeof uPlot === "undefined" || !days.length) return;
    var w = Math.max(280, box.clientWidth || main.clientWidth - 40);
    var opts = {
      width: w, height: 260, scales: { x: { time: true } },
      series: [{}].concat(series.map(function (s, i) {
        return { label: s.label, stroke: PALETTE[i % PALETTE.length], width: 2, dash: s.dash, points: { show: days.length < 40 } };
      })),
      axes: [{}, { size: 50 }], legend: { show: true }
    };
    var u = new uPlot(opts, [days.map(dayTS)].concat(series.map(function (s) { return s.values; })), box);
    charts.push(u);
  }
  window.addEventListener("resize", function () {
    charts.forEach(function (u) { var w = u.root.parentNode.clientWidth; if (w > 0) u.setSize({ width: Math.max(280, w), height: 260 }); });
  });
  function table(id, caption, heads, rows) {
    return h("details", {}, h("summary", {}, t("dataTable")), h("div", { class: "table-wrap" }, h("table", { id: id },
      h("caption", { class: "hint" }, caption),
      h("thead", {}, h("tr", {}, heads.map(function (x) { return h("th", { scope: "col" }, x); }))),
      h("tbody", {}, rows.map(function (r) { return h("tr", {}, r.map(function (c) { return h("td", {}, c); })); })))));
  }
  function compareSections(q, withTables) {
    var pSec = h("section", { class: "card", id: "compare-participants", "aria-labelledby": "h-cp" }, h("h2", { id: "h-cp" }, t("compareParticipants")));
    var dSec = h("section", { class: "card", id: "compare-devices", "aria-labelledby": "h-cd" }, h("h2", { id: "h-cd" }, t("compareDevices")));
    main.appendChild(pSec);
    main.appendChild(dSec);
    var a = api("GET", "/api/v1/compare/participants?" + q).then(function (r) {
      if (!r.ok) { pSec.appendChild(h("p", { class: "error" }, errText(r))); return; }
      var c = r.data;
      if (!c.available) { pSec.appendChild(h("p", { class: "empty", id: "participants-hidden" }, pick(c.reason))); return; }
      pSec.appendChild(h("p", { class: "hint" }, t("participantsN", { n: c.participants })));
      var days = c.days || [];
      if (!days.length) { pSec.appendChild(h("p", { class: "empty" }, t("noData"))); return; }
      var box = h("div", { class: "chart", id: "chart-participants" });
      pSec.appendChild(box);
      chart(box, t("chartParticipants"), days.map(function (d) { return d.day; }), [
        { label: t("mine"), values: days.map(function (d) { return d.mine; }) },
        { label: t("average"), values: days.map(function (d) { return d.average; }), dash: [6, 4] }]);
      pSec.appendChild(table("table-participants", t("chartParticipants"), [t("day"), t("mine"), t("average"), t("percentile")],
        days.map(function (d) { return [d.day, d.mine, (+d.average).toFixed(1), d.percentile === null || d.percentile === undefined ? "—" : Math.round(d.percentile)]; })));
    });
    var b = api("GET", "/api/v1/compare/devices?" + q).then(function (r) {
      if (!r.ok) { dSec.appendChild(h("p", { class: "error" }, errText(r))); return; }
      var devs = r.data.devices || [];
      if (!devs.length) { dSec.appendChild(h("p", { class: "empty" }, t("noDevices"))); return; }
      var set = {};
      devs.forEach(function (d) { (d.days || []).forEach(function (x) { set[x.day] = true; }); });
      var days = Object.keys(set).sort();
      if (!days.length) { dSec.appendChild(h("p", { class: "empty" }, t("noData"))); return; }
      var box = h("div", { class: "chart", id: "chart-devices" });
      dSec.appendChild(box);
      var series = devs.map(function (d) {
        var m = {}; (d.days || []).forEach(function (x) { m[x.day] = x.alerts; });
        return { label: d.serial || d.device_id, values: days.map(function (day) { return m[day] || 0; }) };
      });
      chart(box, t("chartDevices"), days, series);
      dSec.appendChild(table("table-devices", t("chartDevices"), [t("serial"), t("total")],
        devs.map(function (d) { return [d.serial || d.device_id, d.total]; })));
    });
    return Promise.all([a, b]);
  }
  function comparePage() {
    page("compareTitle");
    var q = periodParams();
    main.appendChild(periodForm(q.get("from"), q.get("to")));
    return compareSections(q, true);
  }

  // ---- alerts ----
  function alertsPage(sc) {
    page("alertsTitle");
    customerBar(sc, "alerts");
    var q = query();
    var sevSel = (q.get("severity") || "").split(",").filter(Boolean);
    var devSelect = h("select", { name: "device" }, h("option", { value: "" }, t("all")));
    var f = h("form", { class: "card filters", id: "alert-filters" },
      field("f-from", "from", h("input", { name: "from", type: "date", value: q.get("from") || "" })),
      field("f-to", "to", h("input", { name: "to", type: "date", value: q.get("to") || "" })),
      field("f-device", "device", devSelect),
      h("fieldset", {}, h("legend", {}, t("severity")), [3, 2, 1].map(function (n) {
        return h("label", {}, h("input", { type: "checkbox", name: "severity", value: String(n), checked: sevSel.indexOf(String(n)) >= 0 }), " ", h("span", { class: "stars", "aria-hidden": "true" }, stars(n)), " ", t("sev" + n));
      })),
      field("f-kind", "kind", h("select", { name: "kind" }, h("option", { value: "" }, t("all")), KINDS.map(function (k) {
        return h("option", { value: k, selected: q.get("kind") === k }, t("kind_" + k));
      }))),
      field("f-q", "text", h("input", { name: "q", type: "search", value: q.get("q") || "" }), "textHint"),
      field("f-sort", "sort", h("select", { name: "sort" },
        h("option", { value: "detected_at", selected: q.get("sort") !== "severity" }, t("sortDetected")),
        h("option", { value: "severity", selected: q.get("sort") === "severity" }, t("sortSeverity")))),
      field("f-order", "order", h("select", { name: "order" },
        h("option", { value: "desc", selected: q.get("order") !== "asc" }, t("desc")),
        h("option", { value: "asc", selected: q.get("order") === "asc" }, t("asc")))),
      h("div", { class: "actions" }, h("button", { type: "submit", id: "filter-submit" }, t("filter")),
        link(sc.ui + "/alerts", t("reset"), { class: "button secondary" })));
    f.addEventListener("submit", function (e) {
      e.preventDefault();
      var n = new URLSearchParams();
      ["from", "to", "device", "kind", "q", "sort", "order"].forEach(function (k) { var v = f.elements[k].value; if (v) n.set(k, v); });
      var sv = Array.prototype.filter.call(f.querySelectorAll("input[name=severity]"), function (c) { return c.checked; }).map(function (c) { return c.value; });
      if (sv.length) n.set("severity", sv.join(","));
      go(sc.ui + "/alerts?" + n);
    });
    main.appendChild(f);
    api("GET", sc.api + "/devices").then(function (r) {
      if (!r.ok) return;
      (r.data.items || []).forEach(function (d) {
        devSelect.appendChild(h("option", { value: d.device_id, selected: q.get("device") === d.device_id }, (d.serial || d.device_id) + (d.model ? " (" + d.model + ")" : "")));
      });
    });
    var p = new URLSearchParams(q);
    if (!p.get("page_size")) p.set("page_size", "20");
    return api("GET", sc.api + "/alerts?" + p).then(function (r) {
      if (failed(r)) return;
      var d = r.data, items = d.items || [];
      var region = h("section", { id: "alerts", "aria-live": "polite" });
      main.appendChild(region);
      if (!items.length) { region.appendChild(h("p", { class: "card empty", id: "no-alerts" }, t("noAlerts"))); return; }
      region.appendChild(h("div", { class: "table-wrap" }, h("table", { id: "alert-table" },
        h("thead", {}, h("tr", {}, [t("detectedAt"), t("severity"), t("kind"), t("what"), t("device"), t("action")].map(function (x, i) {
          return h("th", { scope: "col", class: i >= 4 ? "hide-sm" : null }, x);
        }))),
        h("tbody", {}, items.map(function (a) {
          return h("tr", {}, h("td", {}, when(a.detected_at)), h("td", {}, sevLabel(a.severity)), h("td", {}, t("kind_" + a.kind)),
            h("td", {}, link(sc.ui + "/alerts/" + encodeURIComponent(a.id), a.label || a.indicator || a.id, { class: "alert-link" }),
              a.indicator && a.label ? h("div", { class: "hint" }, a.indicator) : null),
            h("td", { class: "hide-sm" }, a.device_id), h("td", { class: "hide-sm" }, a.action || "—"));
        })))));
      var pg = d.page || 1, size = d.page_size || items.length, total = d.total || items.length;
      var first = (pg - 1) * size + 1, last = first + items.length - 1;
      function pageLink(n, key) {
        var x = new URLSearchParams(q); x.set("page", String(n));
        return link(sc.ui + "/alerts?" + x, t(key), { class: "button secondary", rel: key === "next" ? "next" : "prev" });
      }
      region.appendChild(h("nav", { class: "pager", "aria-label": t("pageOf", { total: total, a: first, b: last }) },
        pg > 1 ? pageLink(pg - 1, "prev") : null,
        h("span", { id: "page-info" }, t("pageOf", { total: total, a: first, b: last })),
        last < total ? pageLink(pg + 1, "next") : null));
    });
  }

  var FIELD_ORDER = ["id", "detected_at", "severity", "kind", "label", "indicator", "action", "device_id", "src_ip", "src_port", "src_mac",
    "dst_ip", "dst_port", "dst_mac", "protocol", "zones", "url", "domain", "file_name", "file_sha256", "definitions_version", "count"];
  function alertPage(sc, id) {
    page("alertTitle");
    customerBar(sc, "alerts");
    main.appendChild(h("p", {}, link(sc.ui + "/alerts", "← " + t("backToList"), { id: "back-to-list" })));
    return api("GET", sc.api + "/alerts/" + encodeURIComponent(id)).then(function (r) {
      if (failed(r)) return;
      var a = r.data;
      var keys = FIELD_ORDER.filter(function (k) { return k in a; }).concat(Object.keys(a).filter(function (k) { return FIELD_ORDER.indexOf(k) < 0; }));
      main.appendChild(h("section", { class: "card", id: "alert-detail" }, h("dl", { class: "evidence" }, keys.map(function (k) {
        var v = a[k], shown;
        if (k === "severity") shown = sevLabel(v);
        else if (k === "kind") shown = t("kind_" + v);
        else if (/_at$|_seen$/.test(k)) shown = when(v);
        else if (Array.isArray(v)) shown = v.length ? v.join(", ") : "—";
        else if (v && typeof v === "object") shown = JSON.stringify(v);
        else shown = v === "" || v === null || v === undefined ? "—" : String(v);
        return [h("dt", {}, t("f_" + k) === "f_" + k ? k : t("f_" + k)), h("dd", { "data-field": k }, shown)];
      }))));
    });
  }

  // ---- devices and notices ----
  function devicesPage(sc) {
    page("devicesTitle");
    customerBar(sc, "devices");
    return api("GET", sc.api + "/devices").then(function (r) {
      if (failed(r)) return;
      var items = r.data.items || [];
      if (!items.length) { main.appendChild(h("p", { class: "card empty", id: "no-devices" }, t("noDevices"))); return; }
      main.appendChild(h("div", { class: "table-wrap" }, h("table", { id: "device-table" },
        h("thead", {}, h("tr", {}, [t("serial"), t("model"), t("status"), t("lastContact"), t("firmware"), t("definitions"), t("clients")].map(function (x) {
          return h("th", { scope: "col" }, x);
        }))),
        h("tbody", {}, items.map(function (d) {
          var st = d.status || "unknown";
          return h("tr", { "data-device": d.device_id },
            h("th", { scope: "row" }, link(sc.ui + "/devices/" + encodeURIComponent(d.device_id), d.serial || d.device_id, { class: "device-link" })),
            h("td", {}, d.model || "—"),
            h("td", {}, h("span", { class: "badge " + st }, t("st_" + st))), h("td", {}, when(d.last_contact)),
            h("td", {}, d.firmware_version || "—"), h("td", {}, d.definitions_version || "—"), h("td", { class: "num" }, d.clients === undefined ? "—" : d.clients));
        })))));
    });
  }
  // devicePage is one device: where the mails about it (a digest of its
  // alerts, it stopped or came back) link to.
  function devicePage(sc, id) {
    page("deviceTitle");
    customerBar(sc, "devices");
    main.appendChild(h("p", {}, link(sc.ui + "/devices", "← " + t("backToDevices"), { id: "back-to-devices" })));
    return api("GET", sc.api + "/devices").then(function (r) {
      if (failed(r)) return;
      var items = r.data.items || [];
      var d = items.filter(function (x) { return x.device_id === id; })[0];
      if (!d) {
        main.appendChild(h("p", { class: "card empty", id: "no-device" }, t(items.length ? "deviceNotFound" : "noDevices")));
        return;
      }
      var st = d.status || "unknown";
      var rows = [["f_device_id", "device_id", d.device_id], ["serial", "serial", d.serial], ["model", "model", d.model],
        ["lastContact", "last_contact", when(d.last_contact)], ["firmware", "firmware_version", d.firmware_version],
        ["definitions", "definitions_version", d.definitions_version], ["clients", "clients", d.clients]];
      main.appendChild(h("section", { class: "card", id: "device-detail", "data-device": d.device_id, "aria-labelledby": "device-serial" },
        h("h2", { id: "device-serial" }, d.serial || d.device_id),
        h("p", { id: "device-status" }, h("span", { class: "badge " + st }, t("st_" + st)), " ", t("stHint_" + st)),
        h("dl", { class: "evidence" }, rows.map(function (x) {
          var v = x[2] === undefined || x[2] === null || x[2] === "" ? "—" : String(x[2]);
          return [h("dt", {}, t(x[0])), h("dd", { "data-field": x[1] }, v)];
        })),
        h("div", { class: "actions" }, link(sc.ui + "/alerts?device=" + encodeURIComponent(d.device_id), t("deviceAlerts"), { class: "button", id: "device-alerts" }))));
    });
  }

  function noticeCard(sc, n, detail) {
    var kind = t("notice_" + n.kind) === "notice_" + n.kind ? n.kind : t("notice_" + n.kind);
    return h("article", { class: "card notice", id: detail ? "notice-detail" : null, "data-notice": n.id },
      h("h2", {}, detail ? pick(n.title) : link(sc.ui + "/notices/" + encodeURIComponent(n.id), pick(n.title), { class: "notice-link" })),
      h("p", { class: "hint" }, kind, " · ", t("published"), " ", when(n.published_at),
        n.ends_at ? [" · ", t("schedule"), " ", when(n.starts_at), " 〜 ", when(n.ends_at)]
          : n.starts_at ? [" · ", t(n.kind === "firmware" ? "availableFrom" : "since"), " ", when(n.starts_at)] : null),
      h("p", { style: "white-space:pre-wrap" }, pick(n.body)));
  }
  function noticesPage(sc) {
    page("noticesTitle");
    customerBar(sc, "notices");
    return api("GET", sc.api + "/notices").then(function (r) {
      if (failed(r)) return;
      var items = r.data.items || [];
      if (!items.length) { main.appendChild(h("p", { class: "card empty", id: "no-notices" }, t("noNotices"))); return; }
      items.forEach(function (n) { main.appendChild(noticeCard(sc, n, false)); });
    });
  }
  // noticePage is one notice: where the mails of a fault or a maintenance
  // link to. The API answers 404 for a notice that is not the customer's.
  function noticePage(sc, id) {
    page("noticeTitle");
    customerBar(sc, "notices");
    main.appendChild(h("p", {}, link(sc.ui + "/notices", "← " + t("backToNotices"), { id: "back-to-notices" })));
    return api("GET", sc.api + "/notices/" + encodeURIComponent(id)).then(function (r) {
      if (r.status === 404) { main.appendChild(h("p", { class: "card empty", id: "no-notice" }, t("noticeNotFound"))); return; }
      if (failed(r)) return;
      main.appendChild(noticeCard(sc, r.data, true));
    });
  }

  // ---- settings ----
  // settingsPage changes the password (the current one asked again) and
  // 2-step verification: set it up (an account that declined it or turned
  // it off), replace it, turn it off, get new recovery codes. Each change of
  // 2-step verification starts with the password again; enrolling and
  // replacing then go through the enrolment of the first login, and new
  // recovery codes are shown once.
  function settingsPage(note) {
    page("settingsTitle");
    var box = h("div", { class: "settings" });
    main.appendChild(box);
    add(box, message(note));
    box.appendChild(h("section", { class: "card", "aria-labelledby": "h-account" }, h("h2", { id: "h-account" }, t("accountSection")),
      h("dl", { class: "evidence" }, h("dt", {}, t("loginID")), h("dd", { id: "settings-login-id" }, me.login_id))));

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
          me = r.data.account;
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
      if (r.status === 401) { me = null; return go("/login", true); }
      if (!r.ok) { fs.appendChild(h("p", { class: "error", role: "alert" }, errText(r))); return; }
      factorSection(fs, r.data);
    });
  }

  // factorSection shows the account's 2-step verification, the recovery
  // codes left and the changes it may make.
  function factorSection(fs, st) {
    var factor = st.second_factor, reauth = reauthForm(factor);
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
      enrolFrom = "settings";
      replacing = replace;
      chooseFactor();
      focusTitle();
    };
  }
  function newCodes(f) {
    return api("POST", "/api/v1/account/recovery-codes", {}).then(function (r) {
      if (!r.ok) return showError(f, r);
      enrolFrom = "settings";
      replacing = false;
      recovery(r.data, true);
    });
  }
  function turnOff(f) {
    return api("POST", "/api/v1/account/second-factor/disable", {}).then(function (r) {
      if (!r.ok) return showError(f, r);
      me = r.data.account;
      flash = { id: "factor-off-done", key: "factorOffDone" };
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
        if (r.status === 401) { me = null; return go("/login", true); }
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

  // ---- password reset ----
  // resetRequestPage asks for the user ID. The API answers alike whether the
  // user exists or not, and so does the page.
  function resetRequestPage() {
    page("resetTitle");
    var sent = h("p", { id: "reset-sent", class: "flash", role: "status" });
    main.appendChild(form("reset-form", function (f) {
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
  function resetConfirmPage() {
    page("resetNewTitle");
    var again = h("p", { id: "reset-again", hidden: true }, link("/reset", t("resetAgain")));
    main.appendChild(form("reset-confirm-form", function (f) {
      var p1 = f.elements["reset-password"].value;
      again.hidden = true;
      if (!p1) return showError(f, t("passwordRequired"));
      if (p1 !== f.elements["reset-password2"].value) return showError(f, t("passwordsDiffer"));
      return api("POST", "/api/v1/password-reset/confirm", { token: resetToken, password: p1 }).then(function (r) {
        if (r.ok) {
          resetToken = null;
          flash = { id: "reset-done", key: "resetDone" };
          return go("/login", true);
        }
        showError(f, r);
        if (r.data && r.data.error === "invalid_token") { resetToken = null; again.hidden = false; }
      });
    }, h("p", { class: "hint" }, t("resetNewHint")),
      field("reset-password", "newPassword", h("input", { name: "reset-password", type: "password", autocomplete: "new-password", minlength: "12", required: true }), "newPasswordHint"),
      field("reset-password2", "newPassword2", h("input", { name: "reset-password2", type: "password", autocomplete: "new-password", required: true })),
      errorBox(), again, h("button", { type: "submit", id: "reset-confirm-submit" }, t("save"))));
  }

  // ---- operator ----
  function wait(ms) { return new Promise(function (res) { setTimeout(res, ms); }); }

  function operatorRoute(path) {
    if (me.role !== "operator") {
      page("notFound");
      main.appendChild(h("p", { class: "error", role: "alert" }, t("operatorOnly")));
      return;
    }
    if (path === "/operator") return customersPage();
    if (path === "/operator/notices") return publishPage();
    var m = path.match(/^\/operator\/customers\/([^/]+)(?:\/(summary|alerts|devices|notices))?(?:\/([^/]+))?$/);
    if (m && (!m[3] || (m[2] && m[2] !== "summary"))) {
      var sc = customerScope(decodeURIComponent(m[1]));
      if (m[3]) {
        var id = decodeURIComponent(m[3]);
        if (m[2] === "devices") return devicePage(sc, id);
        if (m[2] === "notices") return noticePage(sc, id);
        return alertPage(sc, id);
      }
      switch (m[2]) {
        case "summary": return dashboard(sc);
        case "alerts": return alertsPage(sc);
        case "devices": return devicesPage(sc);
        case "notices": return noticesPage(sc);
        default: return accountsPage(sc);
      }
    }
    page("notFound");
  }

  function loadCustomers() {
    return api("GET", "/api/v1/operator/customers").then(function (r) {
      if (r.ok) (r.data.items || []).forEach(function (c) { names[c.customer_id] = c.name; });
      return r;
    });
  }

  // customerBar names the customer an operator is reading in the page's
  // title (where the focus lands) and links that customer's pages.
  function customerBar(sc, current) {
    if (sc.own) return;
    var h1 = document.getElementById("page-title");
    var name = h("span", { id: "customer-name" }, names[sc.customer] || sc.customer);
    add(h1, [" — ", name]);
    function retitle() { if (name.isConnected) document.title = h1.textContent + " — " + t("title"); }
    retitle();
    if (!names[sc.customer]) loadCustomers().then(function () { if (names[sc.customer]) { name.textContent = names[sc.customer]; retitle(); } });
    main.appendChild(h("p", { class: "crumbs" }, link("/operator", "← " + t("backToCustomers"), { id: "back-to-customers" }),
      " ", h("span", { class: "hint" }, t("customerID"), ": ", sc.customer)));
    main.appendChild(h("nav", { class: "subnav", id: "customer-nav", "aria-label": t("customerPages") },
      [["", "accounts", "navAccounts"], ["/summary", "summary", "navDashboard"], ["/alerts", "alerts", "navAlerts"],
        ["/devices", "devices", "navDevices"], ["/notices", "notices", "navNotices"]].map(function (p) {
        return link(sc.ui + p[0], t(p[2]), { id: "customer-nav-" + p[1], "aria-current": p[1] === current ? "page" : null });
      })));
  }

  function customersPage() {
    page("customersTitle");
    return loadCustomers().then(function (r) {
      if (failed(r)) return;
      var items = (r.data.items || []).slice();
      if (!items.length) { main.appendChild(h("p", { class: "card empty", id: "no-customers" }, t("noCustomers"))); return; }
      // Locked accounts wait for an operator: their customers come first.
      items.sort(function (a, b) { return (b.open_locks || 0) - (a.open_locks || 0) || String(a.name).localeCompare(String(b.name), lang); });
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
      main.appendChild(h("form", { class: "period", role: "search", onsubmit: function (e) { e.preventDefault(); } },
        field("customer-q", "findCustomer", search, "findCustomerHint")));
      main.appendChild(count);
      main.appendChild(h("div", { class: "table-wrap" }, h("table", { id: "customer-table" },
        h("thead", {}, h("tr", {}, [t("customerName"), t("customerID"), t("devicesN"), t("alerts30d"), t("openLocks")].map(function (x, i) {
          return h("th", { scope: "col", class: i === 1 ? "hide-sm" : i > 1 ? "num" : null }, x);
        }))),
        h("tbody", {}, rows))));
    });
  }

  // accountsPage lists a customer's accounts (never a secret: the API has
  // none to give), lifts locks and asks for more accounts, whose
  // credentials go by mail to the customer, never to this page.
  function accountsPage(sc) {
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
      if (!items.length) { list.appendChild(h("p", { class: "card empty", id: "no-accounts" }, t("noAccounts"))); return; }
      list.appendChild(h("div", { class: "table-wrap" }, h("table", { id: "account-table" },
        // On a phone: the user ID, the state and the lock (with its button).
        h("thead", {}, h("tr", {}, [t("loginID"), t("role"), t("accountState"), t("secondFactor"), t("lock")].map(function (x, i) {
          return h("th", { scope: "col", class: i === 1 || i === 3 ? "hide-sm" : null }, x);
        }))),
        h("tbody", {}, items.map(function (a) {
          var role = t("role_" + a.role) === "role_" + a.role ? a.role : t("role_" + a.role);
          return h("tr", { "data-account": a.account_id, "data-login": a.login_id, "data-locked": a.locked ? "true" : "false" },
            h("th", { scope: "row" }, a.login_id), h("td", { class: "hide-sm" }, role),
            h("td", {}, t(a.temporary ? "stateTemporary" : "stateActive")),
            h("td", { class: "hide-sm" }, t("factor_" + (a.second_factor || "unset"))),
            h("td", {}, a.locked ? [h("span", { class: "badge locked" }, t("locked")), " ", unlockButton(a)] : h("span", { class: "badge online" }, t("notLocked"))));
        })))));
    }
    // An operator account belongs to the operator's own organisation only.
    var own = me && sc.customer === me.customer_id;
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
    main.appendChild(status);
    main.appendChild(list);
    main.appendChild(tools);
    main.appendChild(addForm);
    return fetchAccounts().then(function (r) {
      if (failed(r)) { tools.hidden = addForm.hidden = true; return; }
      render(r.data.items || []);
    });
  }

  // publishPage publishes a maintenance or firmware notice. It checks what
  // notices.Build checks, so that the operator reads the reason in the
  // page's language; the server checks again.
  var MAINTENANCE_LEAD_MS = 30 * 24 * 3600 * 1000; // notices.MaintenanceLead
  var NOTICE_SHORT = 256, NOTICE_DETAILS = 8 * 2048; // the events' limits, in UTF-8 bytes
  function bytes(s) { return new TextEncoder().encode(s).length; }
  function localTime(v) { if (!v) return null; var d = new Date(v); return isNaN(d) ? null : d; }
  function publishPage() {
    page("publishTitle");
    var tz = "";
    try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { tz = ""; }
    var status = h("p", { id: "publish-status", class: "flash", role: "status", tabindex: "-1" });
    var picks = h("div", { class: "checklist", id: "notice-customers", role: "group", "aria-label": t("pickCustomers"), hidden: true },
      h("p", { class: "hint" }, t("loading")));
    function radio(name, value, key, checked) {
      return h("label", {}, h("input", { type: "radio", name: name, value: value, id: name + "-" + value, checked: checked }), " ", t(key));
    }
    var maint = h("div", { id: "maintenance-fields" },
      field("notice-starts", "startsAt", h("input", { name: "starts_at", type: "datetime-local", required: true, "aria-describedby": "notice-tz" })),
      field("notice-ends", "endsAt", h("input", { name: "ends_at", type: "datetime-local", required: true, "aria-describedby": "notice-tz" })),
      h("div", { class: "field check" }, h("label", {}, h("input", { type: "checkbox", name: "force", id: "notice-force", "aria-describedby": "notice-force-hint" }), " ", t("force")),
        h("span", { class: "hint", id: "notice-force-hint" }, t("forceHint"))));
    var firm = h("div", { id: "firmware-fields", hidden: true },
      field("notice-version", "firmwareVersion", h("input", { name: "firmware_version", autocapitalize: "none", spellcheck: "false" }), "firmwareVersionHint"),
      field("notice-available", "availableAt", h("input", { name: "available_at", type: "datetime-local" }), "availableAtHint"));
    var err = errorBox("notice-error");
    var f = h("form", { id: "notice-form", class: "card", novalidate: true },
      h("p", { class: "hint" }, t("publishHint")),
      h("fieldset", {}, h("legend", {}, t("noticeKind")), radio("kind", "maintenance", "notice_maintenance", true), radio("kind", "firmware", "notice_firmware", false)),
      h("fieldset", {}, h("legend", {}, t("noticeAudience")), radio("audience", "all", "allCustomers", true), radio("audience", "some", "someCustomers", false), picks),
      field("notice-summary", "noticeSummary", h("input", { name: "summary", required: true }), "noticeSummaryHint"),
      field("notice-details", "noticeDetails", h("textarea", { name: "details", rows: "5" }), "noticeDetailsHint"),
      maint, firm,
      h("p", { class: "hint", id: "notice-tz" }, t("timeZoneHint", { tz: tz || "—" })),
      err, h("button", { type: "submit", id: "notice-submit" }, t("publishButton")));
    function toggle() {
      var el = f.elements;
      maint.hidden = el.kind.value !== "maintenance";
      firm.hidden = el.kind.value !== "firmware";
      picks.hidden = el.audience.value !== "some";
    }
    f.addEventListener("change", toggle);
    f.addEventListener("submit", function (e) {
      e.preventDefault();
      var el = f.elements, kind = el.kind.value, btn = f.querySelector("button[type=submit]");
      var body = { kind: kind, summary: el.summary.value.trim(), details: el.details.value.trim() };
      err.textContent = "";
      function bad(key, input) { err.textContent = t(key); if (input) input.focus(); }
      if (el.audience.value === "some") {
        var boxes = picks.querySelectorAll("input[type=checkbox]");
        var ids = Array.prototype.filter.call(boxes, function (c) { return c.checked; }).map(function (c) { return c.value; });
        if (!ids.length) return bad("pickOne", boxes[0]);
        body.customers = ids.join(",");
      }
      if (!body.summary) return bad("summaryRequired", el.summary);
      if (bytes(body.summary) > NOTICE_SHORT) return bad("summaryTooLong", el.summary);
      if (bytes(body.details) > NOTICE_DETAILS) return bad("detailsTooLong", el.details);
      if (kind === "maintenance") {
        var s = localTime(el.starts_at.value), en = localTime(el.ends_at.value);
        if (!s) return bad("startsRequired", el.starts_at);
        if (!en) return bad("endsRequired", el.ends_at);
        if (en <= s) return bad("endsBeforeStarts", el.ends_at);
        if (s.getTime() - Date.now() < MAINTENANCE_LEAD_MS && !el.force.checked) return bad("leadTooShort", el.force);
        body.starts_at = s.toISOString();
        body.ends_at = en.toISOString();
        body.force = el.force.checked;
      } else {
        body.firmware_version = el.firmware_version.value.trim();
        if (!body.firmware_version) return bad("versionRequired", el.firmware_version);
        if (bytes(body.firmware_version) > NOTICE_SHORT) return bad("versionTooLong", el.firmware_version);
        var av = localTime(el.available_at.value);
        if (el.available_at.value && !av) return bad("badTime", el.available_at);
        if (av) body.available_at = av.toISOString();
      }
      btn.disabled = true;
      api("POST", "/api/v1/operator/notices", body).then(function (r) {
        btn.disabled = false;
        if (!r.ok) {
          err.textContent = r.status === 422 ? t("noticeRefused") + " " + ((r.data && r.data.message) || "") : errText(r);
          return;
        }
        f.reset();
        toggle();
        status.textContent = t("noticePublished", { id: r.data.notice_id });
        status.focus();
      });
    });
    main.appendChild(status);
    main.appendChild(f);
    return loadCustomers().then(function (r) {
      picks.textContent = "";
      if (!r.ok) { picks.appendChild(h("p", { class: "error" }, errText(r))); return; }
      var items = (r.data.items || []).slice().sort(function (a, b) { return String(a.name).localeCompare(String(b.name), lang); });
      if (!items.length) { picks.appendChild(h("p", { class: "empty" }, t("noCustomers"))); return; }
      items.forEach(function (c) {
        picks.appendChild(h("label", {}, h("input", { type: "checkbox", name: "customer", value: c.customer_id }), c.name || c.customer_id,
          " ", h("span", { class: "hint" }, "(" + c.customer_id + ")")));
      });
    });
  }

  route();
})();
