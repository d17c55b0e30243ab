// Plain DOM helpers. Every text goes through textContent, never innerHTML,
// so data from the API cannot inject markup.
import { t } from "./texts.js";
import { errText } from "./api.js";

// h builds an element: h("a", {href: "/"}, "text", child…).
export function h(tag, attrs) {
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
export function add(el, c) {
  if (c === null || c === undefined || c === false) return;
  if (Array.isArray(c)) { c.forEach(function (x) { add(el, x); }); return; }
  el.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
}

// link is an address of the app: a click stays in the page (app.js).
export function link(href, text, attrs) { var o = attrs || {}; o.href = href; o["data-link"] = true; return h("a", o, text); }

export function field(id, labelKey, input, hintKey) {
  input.id = id;
  var kids = [h("label", { for: id }, t(labelKey)), input];
  if (hintKey) { input.setAttribute("aria-describedby", id + "-hint"); kids.push(h("span", { id: id + "-hint", class: "hint" }, t(hintKey))); }
  return h("div", { class: "field" }, kids);
}
export function form(id, onsubmit) {
  return formOf("card narrow", id, onsubmit, Array.prototype.slice.call(arguments, 2));
}
// formOf is a form of the given class whose submit button stays disabled
// while onsubmit's promise runs.
export function formOf(cls, id, onsubmit, kids) {
  var f = h("form", { id: id, class: cls || null, novalidate: true }, kids);
  f.addEventListener("submit", function (e) {
    e.preventDefault();
    var btn = f.querySelector("button[type=submit]");
    if (btn) btn.disabled = true;
    Promise.resolve(onsubmit(f)).then(function () { if (btn) btn.disabled = false; });
  });
  return f;
}
// showError says r (a text or a refusal of the API) in the form's error box.
export function showError(f, r) { var el = f.querySelector(".error"); el.textContent = typeof r === "string" ? r : errText(r); }

// message shows a flash (a one-time confirmation) as a polite status.
export function message(note) {
  return note ? h("p", { id: note.id, class: "flash", role: "status" }, t(note.key)) : null;
}

export function query() { return new URLSearchParams(location.search); }
