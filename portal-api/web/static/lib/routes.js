// The route table: which page each address shows. Pure, so node's test
// runner checks it; app.js maps the page names to the page modules. The
// same addresses are web.Pages on the server.

// ROUTES: path pattern (":name" is one segment) → page. scope "customer"
// pages read one customer's data for an operator (the :customer of the
// address); the others read the session's own.
export var ROUTES = [
  { path: "/", page: "dashboard" },
  { path: "/alerts", page: "alerts" },
  { path: "/alerts/:id", page: "alert" },
  { path: "/devices", page: "devices" },
  { path: "/devices/:id", page: "device" },
  { path: "/compare", page: "compare" },
  { path: "/notices", page: "notices" },
  { path: "/notices/:id", page: "notice" },
  { path: "/settings", page: "settings" },
  { path: "/operator", page: "customers", operator: true },
  { path: "/operator/notices", page: "publish", operator: true },
  { path: "/operator/customers/:customer", page: "accounts", operator: true, scope: "customer" },
  { path: "/operator/customers/:customer/summary", page: "dashboard", operator: true, scope: "customer" },
  { path: "/operator/customers/:customer/alerts", page: "alerts", operator: true, scope: "customer" },
  { path: "/operator/customers/:customer/alerts/:id", page: "alert", operator: true, scope: "customer" },
  { path: "/operator/customers/:customer/devices", page: "devices", operator: true, scope: "customer" },
  { path: "/operator/customers/:customer/devices/:id", page: "device", operator: true, scope: "customer" },
  { path: "/operator/customers/:customer/notices", page: "notices", operator: true, scope: "customer" },
  { path: "/operator/customers/:customer/notices/:id", page: "notice", operator: true, scope: "customer" }
];

// match is the params of path under pattern ({} when it has none), or
// null. A ":name" segment takes one non-empty segment, URI-decoded.
export function match(pattern, path) {
  var ps = pattern.split("/"), xs = path.split("/");
  if (ps.length !== xs.length) return null;
  var params = {};
  for (var i = 0; i < ps.length; i++) {
    if (ps[i].charAt(0) === ":") {
      if (!xs[i]) return null;
      params[ps[i].slice(1)] = decodeURIComponent(xs[i]);
    } else if (ps[i] !== xs[i]) return null;
  }
  return params;
}

// resolve decides what the address path shows to a session (me: the API's
// principal or null; resetToken: whether a reset link's token is held):
// {page, params, route}, with replace (the address to show instead, in
// place of this one) and remember (the login keeps path to return to).
export function resolve(path, me, resetToken) {
  // The reset pages are for people who cannot log in: any session may see them.
  if (path === "/reset") return { page: resetToken ? "resetConfirm" : "resetRequest", params: {} };
  if (!me || me.stage !== "active") {
    if (path === "/login") return { page: "login", params: {} };
    return { page: "login", params: {}, replace: "/login", remember: path !== "/" };
  }
  if (path === "/login") return withReplace(resolve("/", me, resetToken), "/");
  var operatorArea = path === "/operator" || path.indexOf("/operator/") === 0;
  if (operatorArea && me.role !== "operator") return { page: "operatorOnly", params: {} };
  for (var i = 0; i < ROUTES.length; i++) {
    var p = match(ROUTES[i].path, path);
    if (p) return { page: ROUTES[i].page, params: p, route: ROUTES[i] };
  }
  return { page: "notFound", params: {} };
}

function withReplace(r, to) { r.replace = to; return r; }

// activeNav says whether the menu entry href is the current page's: "/"
// only at "/", the others for their address and the ones under it.
export function activeNav(href, path) { return href === "/" ? path === "/" : path.indexOf(href) === 0; }
