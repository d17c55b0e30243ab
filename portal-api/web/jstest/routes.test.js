import { test } from "node:test";
import assert from "node:assert/strict";
import { ROUTES, match, resolve, activeNav } from "../static/lib/routes.js";

const customer = { stage: "active", role: "customer_admin" };
const operator = { stage: "active", role: "operator" };

test("match takes one non-empty, decoded segment per parameter", () => {
  assert.deepEqual(match("/alerts/:id", "/alerts/2Lq7a"), { id: "2Lq7a" });
  assert.deepEqual(match("/operator/customers/:customer/devices/:id", "/operator/customers/cu%2F1/devices/dv_1"), { customer: "cu/1", id: "dv_1" });
  assert.deepEqual(match("/alerts", "/alerts"), {});
  assert.equal(match("/alerts/:id", "/alerts/"), null);
  assert.equal(match("/alerts/:id", "/alerts/a/b"), null);
  assert.equal(match("/alerts", "/devices"), null);
});

test("resolve routes an active session's addresses", () => {
  const cases = [
    ["/", customer, "dashboard", {}],
    ["/alerts", customer, "alerts", {}],
    ["/alerts/al_1", customer, "alert", { id: "al_1" }],
    ["/devices/dv_1", customer, "device", { id: "dv_1" }],
    ["/compare", customer, "compare", {}],
    ["/notices/nt_1", customer, "notice", { id: "nt_1" }],
    ["/settings", customer, "settings", {}],
    ["/operator", operator, "customers", {}],
    ["/operator/notices", operator, "publish", {}],
    ["/operator/customers/cu_1", operator, "accounts", { customer: "cu_1" }],
    ["/operator/customers/cu_1/summary", operator, "dashboard", { customer: "cu_1" }],
    ["/operator/customers/cu_1/alerts/al_1", operator, "alert", { customer: "cu_1", id: "al_1" }],
    ["/operator/customers/cu_1/notices", operator, "notices", { customer: "cu_1" }],
    ["/operator/customers/cu_1/summary/x", operator, "notFound", {}],
    ["/operator/customers/cu_1/other", operator, "notFound", {}],
    ["/operator/", operator, "notFound", {}],
    ["/alerts/", customer, "notFound", {}],
    ["/nowhere", customer, "notFound", {}],
    ["/operator", customer, "operatorOnly", {}],
    ["/operator/customers/cu_1", customer, "operatorOnly", {}]
  ];
  for (const [path, me, page, params] of cases) {
    const r = resolve(path, me, false);
    assert.equal(r.page, page, path);
    assert.deepEqual(r.params, params, path);
    assert.equal(r.replace, undefined, path);
  }
  assert.equal(resolve("/operator/customers/cu_1/devices", operator, false).route.scope, "customer");
  assert.equal(resolve("/devices", customer, false).route.scope, undefined);
});

test("resolve sends a session that is not active to the login, remembering where it was going", () => {
  for (const me of [null, { stage: "change_credentials" }, { stage: "second_factor" }]) {
    assert.deepEqual(resolve("/alerts/al_1", me, false), { page: "login", params: {}, replace: "/login", remember: true });
    assert.deepEqual(resolve("/", me, false), { page: "login", params: {}, replace: "/login", remember: false });
    assert.deepEqual(resolve("/login", me, false), { page: "login", params: {} });
  }
  const r = resolve("/login", customer, false);
  assert.equal(r.page, "dashboard");
  assert.equal(r.replace, "/");
});

test("resolve shows the reset pages to any session", () => {
  for (const me of [null, customer]) {
    assert.equal(resolve("/reset", me, false).page, "resetRequest");
    assert.equal(resolve("/reset", me, true).page, "resetConfirm");
  }
});

test("every address the server serves the app at is routed, and only those", () => {
  const served = JSON.parse(process.env.MIMAMORI_PAGES || "null");
  if (!served) return; // run outside TestJavaScript
  const routed = ROUTES.map((r) => r.path).concat(["/login", "/reset"]);
  assert.deepEqual(routed.slice().sort(), served.slice().sort());
});

test("activeNav marks the dashboard at / only, the others under their address", () => {
  assert.equal(activeNav("/", "/"), true);
  assert.equal(activeNav("/", "/alerts"), false);
  assert.equal(activeNav("/alerts", "/alerts/al_1"), true);
  assert.equal(activeNav("/alerts", "/devices"), false);
});
