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
  function api(method, path, body) {
    var opt = { method: method, credentials: "same-origin", headers: { "Accept": "application/json", "Accept-Language": lang } };
    if (method !== "GET") { opt.headers["Content-Type"] = "application/json"; opt.body = JSON.stringify(body || {}); }
    return fetch(path, opt).then(function (r) {
      return r.text().then(function (txt) {
        var data = null;
        try { data = txt ? JSON.parse(txt) : null; } catch (e) { data = null; }
        return { status: r.status, ok: r.ok, data: data };
      });
    }, function () { return { status: 0, ok: false, data: null }; });
  }
  function errText(r) { return (r.data && r.data.message) || t("genericError"); }
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
      [["/", "navDashboard"], ["/alerts", "navAlerts"], ["/devices", "navDevices"], ["/compare", "navCompare"], ["/notices", "navNotices"]]
        .forEach(function (p) {
          var cur = p[0] === "/" ? path === "/" : path.indexOf(p[0]) === 0;
          nav.appendChild(link(p[0], t(p[1]), { "aria-current": cur ? "page" : null }));
        });
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
      go("/login", true);
      var p = h("p", { id: "logged-out", role: "status" }, t("loggedOut"));
      main.insertBefore(p, main.firstChild.nextSibling);
    });
  });

  // route renders the page of the current address.
  function route() {
    var path = location.pathname;
    return api("GET", "/api/v1/me").then(function (r) {
      me = r.ok ? r.data : null;
      chrome();
      if (!me || me.stage !== "active") {
        if (path !== "/login") {
          if (path !== "/") sessionStorage.setItem("mimamori.next", path + location.search);
          history.replaceState(null, "", "/login");
        }
        return loginPage();
      }
      if (path === "/login") { history.replaceState(null, "", "/"); path = "/"; chrome(); }
      var m;
      if (path === "/") return dashboard();
      if (path === "/alerts") return alertsPage();
      if ((m = path.match(/^\/alerts\/([^/]+)$/))) return alertPage(decodeURIComponent(m[1]));
      if (path === "/devices") return devicesPage();
      if (path === "/compare") return comparePage();
      if (path === "/notices") return noticesPage();
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
    var kids = Array.prototype.slice.call(arguments, 2);
    var f = h("form", { id: id, class: "card narrow", novalidate: true }, kids);
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
      var next = sessionStorage.getItem("mimamori.next") || "/";
      sessionStorage.removeItem("mimamori.next");
      return go(next, true);
    }
    chrome();
    loginPage();
    focusTitle();
  }

  function loginPage() {
    if (!me) {
      page("loginTitle");
      main.appendChild(form("login-form", function (f) {
        return api("POST", "/api/v1/login", { login_id: f.elements["login-id"].value, password: f.elements.password.value })
          .then(function (r) { if (r.ok) afterStage(r.data); else showError(f, r); });
      }, h("p", { class: "hint" }, t("loginHint")),
        field("login-id", "loginID", h("input", { name: "login-id", autocomplete: "username", required: true, autocapitalize: "none", spellcheck: "false" })),
        field("password", "password", h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
        errorBox(), h("button", { type: "submit", id: "login-submit" }, t("loginButton"))));
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
    if (me.stage === "choose_second_factor") return chooseFactor();
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
    page("chooseTitle");
    main.appendChild(h("div", { class: "card narrow" }, h("p", {}, t("chooseHint")),
      h("div", { class: "actions" },
        h("button", { type: "button", id: "choose-totp", onclick: totpEnrol }, t("chooseTOTP")),
        h("button", { type: "button", id: "choose-sms", class: "secondary", onclick: smsEnrol }, t("chooseSMS")))));
  }
  function backButton() { return h("button", { type: "button", class: "secondary", onclick: function () { chooseFactor(); focusTitle(); } }, t("back")); }

  function totpEnrol() {
    return api("POST", "/api/v1/2fa/totp/enrol", {}).then(function (r) {
      page("totpTitle");
      if (!r.ok) { main.appendChild(h("p", { class: "error", role: "alert" }, errText(r))); return focusTitle(); }
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
      return api("POST", "/api/v1/2fa/sms/enrol", { phone: f.elements.phone.value.trim() }).then(function (r) {
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

  function recovery(data) {
    me = data.account;
    chrome();
    page("recoveryTitle");
    main.appendChild(h("div", { class: "card narrow" }, h("p", {}, t("recoveryHint")),
      h("ol", { class: "codes", id: "recovery-codes" }, (data.recovery_codes || []).map(function (c) { return h("li", {}, c); })),
      h("button", { type: "button", id: "continue", onclick: function () { afterStage(me); } }, t("continue"))));
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

  // ---- dashboard ----
  function dashboard() {
    page("dashTitle");
    var pp = periodParams();
    return api("GET", "/api/v1/dashboard/summary?" + pp).then(function (r) {
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
          link("/alerts?" + important, t("checkProblems"), { class: "button", id: "link-problems" }),
          link("/alerts?" + q, t("checkDetails"), { class: "button secondary", id: "link-details" }))));
      var sev = s.by_severity || {}, kind = s.by_kind || {};
      main.appendChild(h("div", { class: "grid" },
        h("section", { class: "card", "aria-labelledby": "h-sev" }, h("h2", { id: "h-sev" }, t("bySeverity")),
          h("ul", { class: "counts", id: "by-severity" }, [3, 2, 1].map(function (n) {
            var sq = new URLSearchParams(q); sq.set("severity", String(n));
            return h("li", {}, link("/alerts?" + sq, [h("span", { class: "n" }, sev[n] || 0), sevLabel(n)]));
          }))),
        h("section", { class: "card", "aria-labelledby": "h-kind" }, h("h2", { id: "h-kind" }, t("byKind")),
          h("ul", { class: "counts", id: "by-kind" }, KINDS.map(function (k) {
            var kq = new URLSearchParams(q); kq.set("kind", k);
            return h("li", {}, link("/alerts?" + kq, [h("span", { class: "n" }, kind[k] || 0), t("kind_" + k)]));
          })))));
      return compareSections(q, false);
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
  function alertsPage() {
    page("alertsTitle");
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
        link("/alerts", t("reset"), { class: "button secondary" })));
    f.addEventListener("submit", function (e) {
      e.preventDefault();
      var n = new URLSearchParams();
      ["from", "to", "device", "kind", "q", "sort", "order"].forEach(function (k) { var v = f.elements[k].value; if (v) n.set(k, v); });
      var sv = Array.prototype.filter.call(f.querySelectorAll("input[name=severity]"), function (c) { return c.checked; }).map(function (c) { return c.value; });
      if (sv.length) n.set("severity", sv.join(","));
      go("/alerts?" + n);
    });
    main.appendChild(f);
    api("GET", "/api/v1/devices").then(function (r) {
      if (!r.ok) return;
      (r.data.items || []).forEach(function (d) {
        devSelect.appendChild(h("option", { value: d.device_id, selected: q.get("device") === d.device_id }, (d.serial || d.device_id) + (d.model ? " (" + d.model + ")" : "")));
      });
    });
    var p = new URLSearchParams(q);
    if (!p.get("page_size")) p.set("page_size", "20");
    return api("GET", "/api/v1/alerts?" + p).then(function (r) {
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
            h("td", {}, link("/alerts/" + encodeURIComponent(a.id), a.label || a.indicator || a.id, { class: "alert-link" }),
              a.indicator && a.label ? h("div", { class: "hint" }, a.indicator) : null),
            h("td", { class: "hide-sm" }, a.device_id), h("td", { class: "hide-sm" }, a.action || "—"));
        })))));
      var pg = d.page || 1, size = d.page_size || items.length, total = d.total || items.length;
      var first = (pg - 1) * size + 1, last = first + items.length - 1;
      function pageLink(n, key) {
        var x = new URLSearchParams(q); x.set("page", String(n));
        return link("/alerts?" + x, t(key), { class: "button secondary", rel: key === "next" ? "next" : "prev" });
      }
      region.appendChild(h("nav", { class: "pager", "aria-label": t("pageOf", { total: total, a: first, b: last }) },
        pg > 1 ? pageLink(pg - 1, "prev") : null,
        h("span", { id: "page-info" }, t("pageOf", { total: total, a: first, b: last })),
        last < total ? pageLink(pg + 1, "next") : null));
    });
  }

  var FIELD_ORDER = ["id", "detected_at", "severity", "kind", "label", "indicator", "action", "device_id", "src_ip", "src_port", "src_mac",
    "dst_ip", "dst_port", "dst_mac", "protocol", "zones", "url", "domain", "file_name", "file_sha256", "definitions_version", "count"];
  function alertPage(id) {
    page("alertTitle");
    main.appendChild(h("p", {}, link("/alerts", "← " + t("backToList"), { id: "back-to-list" })));
    return api("GET", "/api/v1/alerts/" + encodeURIComponent(id)).then(function (r) {
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
  function devicesPage() {
    page("devicesTitle");
    return api("GET", "/api/v1/devices").then(function (r) {
      if (failed(r)) return;
      var items = r.data.items || [];
      if (!items.length) { main.appendChild(h("p", { class: "card empty", id: "no-devices" }, t("noDevices"))); return; }
      main.appendChild(h("div", { class: "table-wrap" }, h("table", { id: "device-table" },
        h("thead", {}, h("tr", {}, [t("serial"), t("model"), t("status"), t("lastContact"), t("firmware"), t("definitions"), t("clients")].map(function (x) {
          return h("th", { scope: "col" }, x);
        }))),
        h("tbody", {}, items.map(function (d) {
          var st = d.status || "unknown";
          return h("tr", {}, h("th", { scope: "row" }, d.serial || d.device_id), h("td", {}, d.model || "—"),
            h("td", {}, h("span", { class: "badge " + st }, t("st_" + st))), h("td", {}, when(d.last_contact)),
            h("td", {}, d.firmware_version || "—"), h("td", {}, d.definitions_version || "—"), h("td", { class: "num" }, d.clients === undefined ? "—" : d.clients));
        })))));
    });
  }
  function noticesPage() {
    page("noticesTitle");
    return api("GET", "/api/v1/notices").then(function (r) {
      if (failed(r)) return;
      var items = r.data.items || [];
      if (!items.length) { main.appendChild(h("p", { class: "card empty", id: "no-notices" }, t("noNotices"))); return; }
      items.forEach(function (n) {
        main.appendChild(h("article", { class: "card notice" }, h("h2", {}, pick(n.title)),
          h("p", { class: "hint" }, t("notice_" + n.kind) === "notice_" + n.kind ? n.kind : t("notice_" + n.kind), " · ", t("published"), " ", when(n.published_at),
            n.starts_at ? [" · ", t("schedule"), " ", when(n.starts_at), " 〜 ", when(n.ends_at)] : null),
          h("p", { style: "white-space:pre-wrap" }, pick(n.body))));
      });
    });
  }

  route();
})();
