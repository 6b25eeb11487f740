// Held egress requests decided in the console (issue 17), in Debian's
// Chromium driven by playwright-core. tests/console.rs starts the real
// `vault server --broker` with two requests held by an `approval = true`
// rule, and runs this with:
//   LOGIN_URL   the one-time URL `vault ui` printed
//   BASE        the server's http://127.0.0.1:PORT
//   DENY        the held request denied here (its approval id)
//   APPROVE     the held request approved here
//   AGENT       the agent that made both
//   SHOWN       what the denied one's card must show, one per line
//               (method, host, path, the body's preview)
//   LEAK        the broker's finding the leaks page must show, one per line
//               (the denied one's body held a token-shaped value)
//   FORBIDDEN   values no page may contain, one per line
//   SHOTS       where the screenshots go
// It prints one line per check and exits 1 on the first failure.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const env = (name) => {
  const v = process.env[name];
  if (!v) { throw new Error(`${name} is not set`); }
  return v;
};
const LOGIN_URL = env("LOGIN_URL");
const BASE = env("BASE");
const DENY = env("DENY");
const APPROVE = env("APPROVE");
const AGENT = env("AGENT");
const SHOWN = env("SHOWN").split("\n").filter((v) => v.length > 0);
const LEAK = env("LEAK").split("\n").filter((v) => v.length > 0);
const FORBIDDEN = env("FORBIDDEN").split("\n").filter((v) => v.length > 0);
const SHOTS = env("SHOTS");
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
  ],
  viewport: { width: 1280, height: 860 },
});

let failed = false;
try {
  const page = context.pages()[0] || (await context.newPage());
  const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  const noValue = async (where) => {
    const html = await page.content();
    const found = FORBIDDEN.filter((v) => html.includes(v));
    check(found.length === 0, `${where} holds no secret value, key or token`, `${found.length} found`);
  };

  const first = await page.goto(LOGIN_URL);
  check(first.status() === 200, "the one-time URL signs in", String(first.status()));
  await page.waitForURL(`${BASE}/ui/`);

  // the held requests, as the person deciding sees them
  await page.goto(`${BASE}/ui/approvals`);
  const card = page.locator(`#approval-${DENY}`);
  check(await card.count() === 1, "the approvals page lists the held request");
  check(await page.locator(`#approval-${APPROVE}`).count() === 1, "and the second held request");
  const text = await card.innerText();
  check(text.includes(AGENT), `the held request shows its agent ${AGENT}`, text);
  for (const want of SHOWN) { check(text.includes(want), `the held request shows ${want}`, text); }
  check((await card.getAttribute("data-kind")) === "egress_request", "the card is an egress request");
  await noValue("the approvals page");
  await shot("approvals-held");

  // deny it: confirmation, then the result
  await page.click(`#approval-${DENY} a.deny`);
  await page.waitForURL(/\/confirm\?decision=deny/);
  await noValue("the deny confirmation");
  await shot("held-deny-confirm");
  await page.click("form.confirm button[type=submit]");
  await page.waitForSelector("#outcome");
  const outcome = await page.locator("#outcome").innerText();
  check(outcome.includes("denied"), "denying the held request shows it denied", outcome);
  await shot("held-denied");

  // approve the other: confirmation, then the result
  await page.goto(`${BASE}/ui/approvals`);
  await page.click(`#approval-${APPROVE} a.approve`);
  await page.waitForURL(/\/confirm\?decision=approve/);
  await page.click("form.confirm button[type=submit]");
  await page.waitForSelector("#outcome");
  const sent = await page.locator("#outcome").innerText();
  check(sent.includes("approved") || sent.includes("done"), "approving the held request shows it approved", sent);
  await noValue("the approval's result");
  await shot("held-approved");

  // what the broker found in the denied one's body is a leak, reported by it
  const leaks = await page.goto(`${BASE}/ui/leaks`);
  check(leaks.status() === 200, "/ui/leaks renders", String(leaks.status()));
  const row = page.locator("table.leaks tr", { hasText: "outbound request to" });
  check(await row.count() >= 1, "the leaks page lists the broker's finding");
  const found = await row.first().innerText();
  for (const want of LEAK) { check(found.includes(want), `the broker's finding shows ${want}`, found); }
  await noValue("the leaks page");
  await shot("leaks-broker");
} catch (e) {
  failed = true;
  console.log(`FAIL ${e && e.message}`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
