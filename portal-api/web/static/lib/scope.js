// A scope is whose dashboards a page shows: the session's own customer,
// or (for an operator) one customer read through /api/v1/operator/….
// api is the base of the API paths, ui the base of the page addresses.
export function ownScope() { return { api: "/api/v1", summary: "/api/v1/dashboard/summary", ui: "", own: true }; }
export function customerScope(id) {
  var base = "/operator/customers/" + encodeURIComponent(id);
  return { api: "/api/v1" + base, summary: "/api/v1" + base + "/summary", ui: base, own: false, customer: id };
}

// KINDS are the kinds of alert, in the order the pages list them.
export var KINDS = ["domain", "ip", "url", "file", "behaviour"];
