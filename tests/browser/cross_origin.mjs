// The app served from another origin (as the old Next.js app was): it works when that origin is in
// the server's cors_allowed_origins, and is refused (by the browser's CORS checks) when it is not.
import {
  args, run, connectBrowser, person, openApp, registerThroughUi, openDirect, type, message, unique,
  PASSWORD, TIMEOUT_MS,
} from "./lib.mjs";

run(async () => {
  const browser = await connectBrowser();

  // Allowed origin: register, open B, send; the message is stored by the server.
  const a = await person(browser, "A");
  const username = unique("xa");
  await openApp(a, args.allowedUrl);
  await registerThroughUi(a, username, PASSWORD);
  await openDirect(a, args.bUsername);
  await type(a, "hello across origins");
  await a.page.locator('[data-testid="message"]:not([data-state="pending"])', { hasText: "hello across origins" }).waitFor();
  const allowedProblems = [...a.problems];

  // Refused origin: the login cannot reach the server...
  const r = await person(browser, "R");
  await openApp(r, args.refusedUrl);
  await r.by("login-username").fill(args.bUsername);
  await r.by("login-password").fill(PASSWORD);
  await r.by("login-submit").click();
  await r.page.getByRole("alert").filter({ hasText: "Cannot reach the server" }).waitFor();
  // ...and a valid token does not connect either: the browser blocks every request for want of CORS.
  await r.page.evaluate((session) => localStorage.setItem("aurora.session", JSON.stringify(session)), args.bSession);
  const cors = new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), TIMEOUT_MS);
    r.page.on("console", (msg) => { if (/CORS/.test(msg.text())) { clearTimeout(timer); resolve(msg.text()); } });
  });
  await r.page.reload();
  const corsError = await cors;
  const refusedState = await r.by("connection-state").textContent();
  const result = { username, allowedProblems, corsError, refusedState };
  await browser.close();
  return result;
});
