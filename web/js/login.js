// Register / log in. Enter in either field logs in; "Create account" registers with the same fields.
import { AuroraClient } from "aurora-client";
import { h, clear } from "./dom.js";

export function showLogin(root, { serverUrl, onSignedIn, notice }) {
  const username = h("input", { id: "login-username", testid: "login-username", name: "username",
    autocomplete: "username", required: true, minLength: 3, maxLength: 32, autocapitalize: "none",
    spellcheck: "false" });
  const password = h("input", { id: "login-password", testid: "login-password", name: "password",
    type: "password", autocomplete: "current-password", required: true, minLength: 8 });
  const error = h("p", { className: "error", role: "alert", id: "login-error" }, notice || "");
  const submit = h("button", { type: "submit", className: "primary", testid: "login-submit" }, "Log in");
  const register = h("button", { type: "button", testid: "register-submit" }, "Create account");

  async function run(action) {
    error.textContent = "";
    if (!username.value.trim() || !password.value) {
      error.textContent = "Enter a username and a password.";
      return;
    }
    submit.disabled = register.disabled = true;
    try {
      const session = action === "register"
        ? await AuroraClient.register(serverUrl, { username: username.value.trim(), password: password.value })
        : await AuroraClient.login(serverUrl, username.value.trim(), password.value);
      onSignedIn(session);
    } catch (err) {
      error.textContent = describe(err, action);
      submit.disabled = register.disabled = false;
    }
  }

  const form = h("form", { className: "login", "aria-labelledby": "login-title", novalidate: true,
    onsubmit: (event) => { event.preventDefault(); run("login"); } },
    h("h1", { id: "login-title" }, "Aurora"),
    h("p", { className: "muted" }, "Log in, or create an account with a new username."),
    h("label", { for: "login-username" }, "Username"), username,
    h("label", { for: "login-password" }, "Password"), password,
    h("p", { className: "muted", id: "password-hint" }, "At least 8 characters."),
    error,
    h("div", { className: "actions" }, submit, register));
  password.setAttribute("aria-describedby", "password-hint login-error");
  register.addEventListener("click", () => run("register"));
  clear(root).append(form);
  username.focus();
}

function describe(err, action) {
  switch (err?.code) {
    case "invalid_credentials": return "Wrong username or password.";
    case "conflict": return "That username is taken.";
    case "rate_limited": return "Too many attempts; try again later.";
    case "invalid": return err.message || "Check the username (3–32 letters, digits, _ . -) and password (8+ characters).";
    default:
      if (err?.status == null) return "Cannot reach the server. Check the connection and try again.";
      return `Could not ${action === "register" ? "create the account" : "log in"}: ${err.message || err.code}`;
  }
}
