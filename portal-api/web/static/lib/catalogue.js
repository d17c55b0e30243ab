// Catalogue lookup: the texts of schemas/messages, as served at
// /assets/messages/<lang>.json. No DOM, so node's test runner checks it.

// format puts vars into the text's {name} placeholders.
export function format(s, vars) {
  if (vars) Object.keys(vars).forEach(function (k) { s = s.split("{" + k + "}").join(String(vars[k])); });
  return s;
}

// lookup is the text of key in lang, else the Japanese one (R-42: Japanese
// first), else the key itself, so a missing text shows and can be tested
// for (t(k) === k).
export function lookup(texts, lang, key, vars) {
  var own = texts[lang] || {}, ja = texts.ja || {};
  var s = own[key];
  if (s === undefined) s = ja[key] !== undefined ? ja[key] : key;
  return format(s, vars);
}

// pick is the lang text of an object of texts in both languages (the API's
// {ja, en} fields).
export function pick(o, lang) { return o ? (o[lang] || o.ja || o.en || "") : ""; }
