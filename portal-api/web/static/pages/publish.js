// The operator publishes a maintenance or firmware notice. The page checks
// what notices.Build checks, so that the operator reads the reason in the
// page's language; the server checks again.
import { h, field } from "../dom.js";
import { t, lang } from "../texts.js";
import { api, errText } from "../api.js";
import { main, page } from "../shell.js";
import { bytes, localTime } from "../lib/format.js";
import { errorBox, errorLine } from "../components/error.js";
import { empty } from "../components/empty.js";
import { loadCustomers } from "../components/customer-bar.js";

var MAINTENANCE_LEAD_MS = 30 * 24 * 3600 * 1000; // notices.MaintenanceLead
var NOTICE_SHORT = 256, NOTICE_DETAILS = 8 * 2048; // the events' limits, in UTF-8 bytes

export function publishPage() {
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
  main().appendChild(status);
  main().appendChild(f);
  return loadCustomers().then(function (r) {
    picks.textContent = "";
    if (!r.ok) { picks.appendChild(errorLine(errText(r))); return; }
    var l = lang();
    var items = (r.data.items || []).slice().sort(function (a, b) { return String(a.name).localeCompare(String(b.name), l); });
    if (!items.length) { picks.appendChild(empty(null, t("noCustomers"), "empty")); return; }
    items.forEach(function (c) {
      picks.appendChild(h("label", {}, h("input", { type: "checkbox", name: "customer", value: c.customer_id }), c.name || c.customer_id,
        " ", h("span", { class: "hint" }, "(" + c.customer_id + ")")));
    });
  });
}
