// What the pages share about the session, in one object (modules cannot
// assign each other's variables).
export var session = {
  me: null, // the session's principal, or null
  flash: null, // {id, key}: a message for the next page (login, settings), shown once
  names: {}, // customer ID → name, as the operator's list last showed them
  enrolFrom: "login", // where an enrolment of a second factor started: "login" or "settings"
  replacing: false, // the enrolment from the settings replaces the account's factor
  // The token of a password reset link (/reset#token=…; links mailed
  // before carry it in the query, /reset?token=…) leaves the address bar
  // before any request is made, so it stays out of the history, of Referer
  // headers and of screenshots; only this keeps it.
  resetToken: null
};
