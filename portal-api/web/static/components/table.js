// Tables of the API's lists: a table with its column heads, the sort
// fields of a sortable list and the pager of a paged one.
import { h, link, field } from "../dom.js";
import { t } from "../texts.js";
import { pageRange } from "../lib/format.js";

// table is a wrapped table: heads are [text, class] pairs (class hides a
// column on a phone or aligns numbers), rows its body rows.
export function table(id, heads, rows) {
  return h("div", { class: "table-wrap" }, h("table", { id: id },
    h("thead", {}, h("tr", {}, heads.map(function (x) { return h("th", { scope: "col", class: x[1] || null }, x[0]); }))),
    h("tbody", {}, rows)));
}

// sortFields are the sort and order selects of a list whose API sorts by
// the keys given ([value, label key], the first the default) in the
// order of the query q.
export function sortFields(q, keys) {
  var by = q.get("sort");
  var known = keys.some(function (k) { return k[0] === by; });
  return [
    field("f-sort", "sort", h("select", { name: "sort" }, keys.map(function (k, i) {
      return h("option", { value: k[0], selected: known ? by === k[0] : i === 0 }, t(k[1]));
    }))),
    field("f-order", "order", h("select", { name: "order" },
      h("option", { value: "desc", selected: q.get("order") !== "asc" }, t("desc")),
      h("option", { value: "asc", selected: q.get("order") === "asc" }, t("asc"))))];
}

// pager links the pages before and after this one of a paged list at base
// (with the query q), from the API's page, page_size and total.
export function pager(base, q, d, shown) {
  var r = pageRange(d.page, d.page_size, d.total, shown);
  function pageLink(n, key) {
    var x = new URLSearchParams(q); x.set("page", String(n));
    return link(base + "?" + x, t(key), { class: "button secondary", rel: key === "next" ? "next" : "prev" });
  }
  var label = t("pageOf", { total: r.total, a: r.first, b: r.last });
  return h("nav", { class: "pager", "aria-label": label },
    r.prev ? pageLink(r.page - 1, "prev") : null,
    h("span", { id: "page-info" }, label),
    r.next ? pageLink(r.page + 1, "next") : null);
}
