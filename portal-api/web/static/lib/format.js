// Formatting of values the API sends: dates, severities, days and sizes.
// No DOM.

// when is a time of the API (RFC 3339) in the page's language and the
// browser's time zone; "—" for none (the zero time included).
export function when(s, lang) {
  if (!s) return "—";
  var d = new Date(s);
  if (isNaN(d) || d.getTime() <= 0) return "—";
  return d.toLocaleString(lang === "ja" ? "ja-JP" : "en-GB", { dateStyle: "medium", timeStyle: "medium" });
}

// stars shows a severity 1–3 as three stars, filled up to n.
export function stars(n) { n = Number(n) || 0; return "★★★".slice(0, n) + "☆☆☆".slice(0, 3 - n); }

// dayTS is the Unix time (seconds) of a YYYY-MM-DD day's UTC midnight, the
// x values of the charts.
export function dayTS(d) { var p = String(d).split("-"); return Date.UTC(+p[0], +p[1] - 1, +p[2]) / 1000; }

// bytes is the length of s in UTF-8, which the events' limits count.
export function bytes(s) { return new TextEncoder().encode(s).length; }

// localTime reads a datetime-local input's value, or null.
export function localTime(v) { if (!v) return null; var d = new Date(v); return isNaN(d) ? null : d; }

// periodParams keeps the period (from, to) of a page's query.
export function periodParams(q) {
  var p = new URLSearchParams();
  ["from", "to"].forEach(function (k) { if (q.get(k)) p.set(k, q.get(k)); });
  return p;
}

// pageRange is what a page of a paged list shows: its first and last item
// (counted from 1) and the total, from the API's page, page_size and total.
export function pageRange(page, pageSize, total, shown) {
  var pg = page || 1, size = pageSize || shown, all = total || shown;
  var first = (pg - 1) * size + 1, last = first + shown - 1;
  return { page: pg, first: first, last: last, total: all, prev: pg > 1, next: last < all };
}
