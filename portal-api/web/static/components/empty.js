// The empty state: a list or a chart with nothing to show says so.
import { h } from "../dom.js";

// empty is a card of its own (cls "card empty", the default) or a line
// inside one (cls "empty").
export function empty(id, text, cls) { return h("p", { class: cls || "card empty", id: id || null }, text); }
