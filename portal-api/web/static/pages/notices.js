// The notices (maintenance, firmware, faults): the list, and one notice
// (where the mails of a fault or a maintenance link to).
import { h, link } from "../dom.js";
import { t, pick, lang } from "../texts.js";
import { api } from "../api.js";
import { main, page } from "../shell.js";
import { when } from "../lib/format.js";
import { failed } from "../components/error.js";
import { empty } from "../components/empty.js";
import { customerBar } from "../components/customer-bar.js";

function noticeCard(sc, n, detail) {
  var kind = t("notice_" + n.kind) === "notice_" + n.kind ? n.kind : t("notice_" + n.kind), l = lang();
  return h("article", { class: "card notice", id: detail ? "notice-detail" : null, "data-notice": n.id },
    h("h2", {}, detail ? pick(n.title) : link(sc.ui + "/notices/" + encodeURIComponent(n.id), pick(n.title), { class: "notice-link" })),
    h("p", { class: "hint" }, kind, " · ", t("published"), " ", when(n.published_at, l),
      n.ends_at ? [" · ", t("schedule"), " ", when(n.starts_at, l), " 〜 ", when(n.ends_at, l)]
        : n.starts_at ? [" · ", t(n.kind === "firmware" ? "availableFrom" : "since"), " ", when(n.starts_at, l)] : null),
    h("p", { style: "white-space:pre-wrap" }, pick(n.body)));
}

export function noticesPage(sc) {
  page("noticesTitle");
  customerBar(sc, "notices");
  return api("GET", sc.api + "/notices").then(function (r) {
    if (failed(r)) return;
    var items = r.data.items || [];
    if (!items.length) { main().appendChild(empty("no-notices", t("noNotices"))); return; }
    items.forEach(function (n) { main().appendChild(noticeCard(sc, n, false)); });
  });
}

// noticePage: the API answers 404 for a notice that is not the customer's.
export function noticePage(sc, id) {
  page("noticeTitle");
  customerBar(sc, "notices");
  main().appendChild(h("p", {}, link(sc.ui + "/notices", "← " + t("backToNotices"), { id: "back-to-notices" })));
  return api("GET", sc.api + "/notices/" + encodeURIComponent(id)).then(function (r) {
    if (r.status === 404) { main().appendChild(empty("no-notice", t("noticeNotFound"))); return; }
    if (failed(r)) return;
    main().appendChild(noticeCard(sc, r.data, true));
  });
}
