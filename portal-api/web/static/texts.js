// The page's language and its texts: both catalogues of schemas/messages,
// fetched once at start (/assets/messages/ja.json and en.json), so that
// switching the language needs no request.
import { lookup, pick as pickIn } from "./lib/catalogue.js";

var texts = { ja: {}, en: {} };
var current = localStorage.getItem("mimamori.lang") === "en" ? "en" : "ja";

// loadTexts fetches the catalogues; a language that fails to load shows the
// other's texts (or the keys), as t falls back. The loaded catalogue is
// also window.MIMAMORI_TEXT, where the browser test checks that every key
// is in both languages.
export function loadTexts() {
  window.MIMAMORI_TEXT = texts;
  return Promise.all(["ja", "en"].map(function (l) {
    return fetch("/assets/messages/" + l + ".json", { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : {}; })
      .then(function (o) { texts[l] = o; }, function () { texts[l] = {}; });
  }));
}

export function lang() { return current; }

// setLang changes the language and remembers it in this browser.
export function setLang(l) {
  current = l === "en" ? "en" : "ja";
  localStorage.setItem("mimamori.lang", current);
}

// t is the text of key in the page's language, with vars in its placeholders.
export function t(key, vars) { return lookup(texts, current, key, vars); }

// pick is the page's language of an API object of texts ({ja, en}).
export function pick(o) { return pickIn(o, current); }
