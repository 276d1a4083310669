// Drives headless Chromium (Debian's, through playwright-core) for the whole-system tests in
// tests/system/dashboard: `node driver.mjs <url>` opens the page, prints `{"ready":true}`, then
// answers one JSON command per stdin line with one JSON line on stdout:
//   {"op":"eval","js":"<expression>"}  -> {"ok":true,"value":<its value>}
//   {"op":"screenshot","path":"<file>"} -> {"ok":true}
//   {"op":"report"}                     -> {"ok":true,"value":{"console_errors":[...],"foreign_requests":[...]}}
//   {"op":"close"}                      -> {"ok":true}, then exits
// A failing command answers {"ok":false,"error":"..."}. Requests to any origin but the page's are
// recorded and aborted, so nothing leaves this machine whatever the page does. ELB_BROWSER_ARGS,
// a JSON array, adds Chromium flags (the HTTPS tests map a name to loopback and trust one
// certificate by its key's hash).
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const url = process.argv[2];
const origin = new URL(url).origin;
const profile = mkdtempSync(join(tmpdir(), "elb-chromium-"));
const consoleErrors = [];
const foreignRequests = [];

// The flags DESIGN.md records: without the background-networking ones Chromium tries to reach
// Google's hosts at every start.
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.ELB_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1400, height: 1100 },
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    ...JSON.parse(process.env.ELB_BROWSER_ARGS || "[]"),
  ],
});
await context.route("**/*", (route) => {
  const target = route.request().url();
  if (new URL(target).origin === origin) return route.continue();
  foreignRequests.push(target);
  return route.abort();
});
const page = context.pages()[0] || (await context.newPage());
page.on("console", (m) => {
  if (m.type() === "error") consoleErrors.push(m.text());
});
page.on("pageerror", (e) => consoleErrors.push(`uncaught: ${e.message}`));
await page.goto(url, { waitUntil: "load" });

const send = (answer) => process.stdout.write(`${JSON.stringify(answer)}\n`);
send({ ready: true });

async function perform(command) {
  switch (command.op) {
    case "eval":
      return page.evaluate(command.js);
    case "screenshot":
      await page.screenshot({ path: command.path, fullPage: true });
      return null;
    case "report":
      return { console_errors: consoleErrors, foreign_requests: foreignRequests };
    case "close":
      await context.close();
      rmSync(profile, { recursive: true, force: true });
      return null;
    default:
      throw new Error(`unknown op ${command.op}`);
  }
}

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const command = JSON.parse(line);
  try {
    send({ ok: true, value: (await perform(command)) ?? null });
  } catch (e) {
    send({ ok: false, error: String(e && e.stack ? e.stack : e) });
  }
  if (command.op === "close") process.exit(0);
}
// Stdin closed without a close command (the test process died): leave no browser behind.
await context.close();
rmSync(profile, { recursive: true, force: true });
process.exit(0);
