// The console in a real browser (issue 17): Debian's Chromium, headless,
// driven by playwright-core. tests/console.rs starts the real `vault server`
// with seeded data and runs this with:
//   LOGIN_URL   the one-time URL `vault ui` printed
//   BASE        the server's http://127.0.0.1:PORT
//   APPROVAL    the pending rotation's approval id (approved here)
//   DENY        another pending approval's id (denied here)
//   SECRET      AGENT/NAME of the leaked secret it rotates
//   AGENTS      the seeded agents, comma-separated
//   FORBIDDEN   values no page may contain, one per line (the canary, keys)
//   SHOTS       where the screenshots go
// It prints one line per check and exits 1 on the first failure.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";

const env = (name) => {
  const v = process.env[name];
  if (!v) { throw new Error(`${name} is not set`); }
  return v;
};
const LOGIN_URL = env("LOGIN_URL");
const BASE = env("BASE");
const APPROVAL = env("APPROVAL");
const DENY = env("DENY");
const [AGENT, SECRET] = env("SECRET").split("/");
const AGENTS = env("AGENTS").split(",");
const FORBIDDEN = env("FORBIDDEN").split("\n").filter((v) => v.length > 0);
const SHOTS = env("SHOTS");
const PORT = new URL(BASE).port;
mkdirSync(SHOTS, { recursive: true });

function check(ok, what, detail) {
  if (!ok) {
    console.log(`FAIL ${what}${detail ? ": " + detail : ""}`);
    throw new Error(what);
  }
  console.log(`ok   ${what}`);
}

const profile = mkdtempSync(join(tmpdir(), "vault-console-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    // DNS rebinding, for real: this name resolves to the server's loopback address
    "--host-resolver-rules=MAP rebound.example 127.0.0.1",
  ],
  viewport: { width: 1280, height: 860 },
});
const cspViolations = [];
context.on("console", (msg) => {
  if (/Content Security Policy|Refused to/.test(msg.text())) { cspViolations.push(msg.text()); }
});
// a page of another origin, to post a form at the console from
const attacker = createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/html" });
  res.end(`<!DOCTYPE html><form id="f" method="post" action="${BASE}/ui/approvals/${APPROVAL}/decide">
    <input name="csrf" value="guessed"><input name="decision" value="approve">
    <button id="go" type="submit">win a prize</button></form>`);
});
await new Promise((r) => attacker.listen(0, "127.0.0.1", r));
const attackerUrl = `http://localhost:${attacker.address().port}/`;

let failed = false;
let bare = null;
try {
  const page = context.pages()[0] || (await context.newPage());
  const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

  // 1. sign in through the one-time URL
  const first = await page.goto(LOGIN_URL);
  check(first.status() === 200, "the one-time URL signs in", String(first.status()));
  await page.waitForURL(`${BASE}/ui/`);
  const cookies = await context.cookies(`${BASE}/ui/`);
  const session = cookies.find((c) => c.name === "vault_console");
  check(session && session.httpOnly && session.sameSite === "Strict" && session.expires > 0,
    "the session cookie is HttpOnly, SameSite=Strict, with an expiry", JSON.stringify(session));

  // 2. both agents, and the secret at version 1
  const overview = await page.content();
  for (const a of AGENTS) { check(overview.includes(a), `the overview shows agent ${a}`); }
  const minted = await page.locator("tr.agent", { hasText: "codex-ci" }).locator("td.num").first().innerText();
  check(minted.trim() === "2", "the overview counts the two tokens minted today", minted);
  // each agent's spend today and this month, as the shipped price table gives it
  for (const [agent, spend] of [["codex-ci", "$3.18"], ["hermes-marketing", "$0.60"]]) {
    const cells = page.locator("tr.agent", { hasText: agent }).locator("td.num");
    const [today, month] = [(await cells.nth(1).innerText()).trim(), (await cells.nth(2).innerText()).trim()];
    check(today === spend && month === spend, `the overview shows ${agent}'s spend today and this month`,
      `${today} / ${month}`);
  }
  const row = page.locator("tr.agent", { hasText: AGENT }).locator(".secret", { hasText: SECRET });
  check((await row.innerText()).includes("v1"), `${AGENT}/${SECRET} is at version 1`);
  await shot("overview");

  // 3. a form posted from another origin is refused, and changes nothing
  await page.goto(attackerUrl);
  const [attack] = await Promise.all([
    page.waitForResponse((r) => r.url().includes("/decide")),
    page.click("#go"),
  ]);
  check([401, 403].includes(attack.status()), "a form posted from another origin is refused", String(attack.status()));
  await shot("cross-origin-refused");
  // the same post with the session cookie and the real CSRF token, but another Origin
  await page.goto(`${BASE}/ui/approvals/${APPROVAL}/confirm?decision=approve`);
  const csrf = await page.locator("form.confirm input[name=csrf]").inputValue();
  const forged = await context.request.post(`${BASE}/ui/approvals/${APPROVAL}/decide`, {
    headers: { Origin: attackerUrl.replace(/\/$/, "") },
    form: { csrf, decision: "approve" },
  });
  check(forged.status() === 403 && (await forged.text()).includes("did not come from"),
    "the session's own cookie and CSRF token from another Origin are refused", String(forged.status()));

  // 4. approve the pending rotation (confirm step, then the result)
  await page.goto(`${BASE}/ui/approvals`);
  await shot("approvals");
  await page.click(`#approval-${APPROVAL} a.approve`);
  await page.waitForURL(/\/confirm\?decision=approve/);
  await shot("approve-confirm");
  await page.click("form.confirm button[type=submit]");
  await page.waitForSelector("#outcome");
  const outcome = await page.content();
  check(outcome.includes("rotated to version 2"), "approving runs the rotation and shows the result");
  await shot("approved");
  // approving twice runs once
  const twice = await context.request.post(`${BASE}/ui/approvals/${APPROVAL}/decide`, {
    headers: { Origin: BASE }, form: { csrf, decision: "approve" },
  });
  check(twice.status() === 403 && (await twice.text()).includes("Not carried out"), "a second approval is refused", String(twice.status()));
  await page.goto(`${BASE}/ui/`);
  const after = await page.locator("tr.agent", { hasText: AGENT }).locator(".secret", { hasText: SECRET }).innerText();
  check(after.includes("v2"), `${AGENT}/${SECRET} is now at version 2 (once)`, after);

  // deny the other one, in a browser with JavaScript off (reading and
  // deciding are plain links and forms): nothing it drafted happens
  bare = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
  });
  const nojs = await bare.newContext({ javaScriptEnabled: false, viewport: { width: 1280, height: 860 } });
  await nojs.addCookies(await context.cookies(`${BASE}/ui/`));
  const plain = await nojs.newPage();
  await plain.goto(`${BASE}/ui/`);
  const plainOverview = await plain.content();
  check(AGENTS.every((a) => plainOverview.includes(a)), "without JavaScript the overview shows every agent");
  await plain.goto(`${BASE}/ui/approvals`);
  await plain.click(`#approval-${DENY} a.deny`);
  await plain.waitForURL(/\/confirm\?decision=deny/);
  await plain.click("form.confirm button[type=submit]");
  await plain.waitForSelector("#outcome");
  check((await plain.locator("#outcome").innerText()).includes("denied"),
    "without JavaScript, denying through the plain form shows the approval denied");
  await plain.screenshot({ path: join(SHOTS, "denied.png"), fullPage: true });
  await bare.close();
  bare = null;

  // 5. every page renders, with the strict headers, and holds no value
  for (const [name, path] of [["overview", "/ui/"], ["spend", "/ui/spend"], ["approvals-after", "/ui/approvals"],
    ["leaks", "/ui/leaks"], ["audit", "/ui/audit"], ["doctor", "/ui/doctor"]]) {
    const r = await page.goto(`${BASE}${path}`);
    check(r.status() === 200, `${path} renders`, String(r.status()));
    const h = r.headers();
    check((h["content-security-policy"] || "").startsWith("default-src 'self'") && h["x-frame-options"] === "DENY"
      && h["referrer-policy"] === "no-referrer" && h["cache-control"] === "no-store", `${path} carries the security headers`);
    const html = await page.content();
    check(FORBIDDEN.every((v) => !html.includes(v)), `${path} holds no secret value, key or token`);
    await shot(name);
  }
  const spendPage = await (await page.goto(`${BASE}/ui/spend`)).text();
  check(spendPage.includes("gpt-4o-mini") && spendPage.includes("api.openai.com:443") && spendPage.includes("<svg"),
    "the spend page charts spend by model and host");
  const leaks = await (await page.goto(`${BASE}/ui/leaks`)).text();
  check(leaks.includes(`${AGENT}/${SECRET}`) && leaks.includes("rotation approval"), "the leak is listed with what the vault did");
  const audit = await (await page.goto(`${BASE}/ui/audit?action=approval.approve`)).text();
  check(audit.includes("console") && audit.includes("Chain verified"), "the approval is in the verified trail with origin console");

  // 6. a second use of the login URL fails
  const again = await page.goto(LOGIN_URL);
  check(again.status() === 401, "a second use of the login URL fails", String(again.status()));
  await shot("login-reused");

  // 7. a page reached by another name (DNS rebinding) is refused
  const rebound = await page.goto(`http://rebound.example:${PORT}/ui/`);
  check(rebound.status() === 421, "a foreign Host header is refused", String(rebound.status()));
  await shot("rebound-refused");

  // 8. sign out
  await page.goto(`${BASE}/ui/`);
  await page.click("form.logout button");
  await page.waitForSelector("text=Signed out");
  const gone = await page.goto(`${BASE}/ui/`);
  check(gone.status() === 401, "after signing out the console asks to sign in again", String(gone.status()));

  check(cspViolations.length === 0, "no Content-Security-Policy violation on any page", cspViolations.join(" | "));
} catch (e) {
  failed = true;
  console.log(`FAIL ${e && e.message}`);
} finally {
  if (bare) { await bare.close(); }
  await context.close();
  attacker.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
