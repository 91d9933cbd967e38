// The hub in a real browser: Debian's Chromium driven by playwright-core.
//
// Starts `tenantatlas demo` on a fresh SQLite file (it seeds two tenants, a
// user per role, finished runs of every outcome including a reconciled one,
// and keeps long runs going), then walks through what people do. Screenshots
// of the main pages land in artifacts/screenshots/.
//
//   node tests/browser/hub.mjs            (TENANTATLAS_BIN overrides the binary)
//
// TENANTATLAS_BROWSER_DATABASE_URL runs the same walk on another database
// (scripts/test.sh passes an empty PostgreSQL schema); its screenshots land
// in artifacts/screenshots/postgres/.

import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const bin = process.env.TENANTATLAS_BIN || path.join(root, "target/debug/tenantatlas");
const dbUrl = process.env.TENANTATLAS_BROWSER_DATABASE_URL || "";
const backend = dbUrl.startsWith("postgres") ? "postgres" : "sqlite";
const shots = path.join(root, "artifacts/screenshots", backend === "sqlite" ? "" : backend);
mkdirSync(shots, { recursive: true });
const port = 18_000 + (process.pid % 1000);
const base = `http://127.0.0.1:${port}`;

function startDemo() {
  const dir = mkdtempSync(path.join(tmpdir(), "ta-browser-"));
  const child = spawn(bin, ["demo", "--bind", `127.0.0.1:${port}`], {
    cwd: dir,
    env: { ...process.env, TENANTATLAS_DATABASE_URL: dbUrl || `sqlite://${dir}/demo.db`, RUST_LOG: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (err += d));
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 60_000;
    const tick = setInterval(() => {
      if (err.includes("the hub listens on")) {
        clearInterval(tick);
        const users = {};
        for (const m of out.matchAll(/^\s+(\S+@demo\.example)\s+(\S+)\s+\(/gm)) users[m[1].split("@")[0]] = { email: m[1], password: m[2] };
        resolve({ child, users });
      } else if (Date.now() > deadline || child.exitCode !== null) {
        clearInterval(tick);
        reject(new Error(`the demo did not start:\n${out}\n${err}`));
      }
    }, 100);
  });
}

async function signIn(browser, who) {
  const context = await browser.newContext({ baseURL: base });
  const page = await context.newPage();
  await page.goto("/login");
  await page.fill("input[name=email]", who.email);
  await page.fill("input[name=password]", who.password);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  return { context, page };
}

async function until(what, fn, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const api = (page, url, init) =>
  page.evaluate(
    async ([url, init]) => {
      const r = await fetch(url, { credentials: "same-origin", ...init });
      return { status: r.status, body: await r.json().catch(() => null) };
    },
    [url, init ?? {}],
  );

const results = [];
async function step(name, fn) {
  const t = Date.now();
  await fn();
  results.push(`ok  ${name} (${Date.now() - t} ms)`);
  console.log(results.at(-1));
}

const { child, users } = await startDemo();
let browser;
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
} catch (e) {
  // without a browser the walk cannot run: stop the demo rather than leave it serving
  child.kill("SIGTERM");
  throw e;
}
let failed = false;
try {
  assert.ok(users.operator && users.readonly && users.owner && users.platform, "the demo printed every user");
  const op = await signIn(browser, users.operator);
  const tenants = await api(op.page, "/api/v1/runs?limit=1");
  assert.equal(tenants.status, 200);
  const tenantId = tenants.body.runs[0].tenant_id;

  await step("operator: start → toast → run detail → live progress → completion → one notification", async () => {
    const p = op.page;
    await p.goto(`/admin/tenants/${tenantId}`);
    await p.screenshot({ path: path.join(shots, "tenant-dashboard.png"), fullPage: true });
    await p.click("button[data-type=synthetic]");
    const toast = p.locator("#toasts .toast").first();
    await toast.waitFor();
    assert.equal(await toast.getAttribute("data-kind"), "queued");
    await Promise.all([p.waitForNavigation(), toast.locator("a", { hasText: "View run" }).click()]);
    const runId = p.url().split("/").pop();
    assert.match(p.url(), /\/admin\/operations\/[0-9a-f-]{36}$/);
    await p.screenshot({ path: path.join(shots, "run-detail-active.png"), fullPage: true });
    // live progress: the widget's bar for this run moves without a reload
    const bar = p.locator(`#widget li[data-run="${runId}"] progress`);
    await bar.waitFor({ timeout: 20_000 });
    const first = Number(await bar.getAttribute("value"));
    await until("progress to move", async () => Number(await bar.getAttribute("value")) > first);
    assert.equal(await p.locator(`#widget li[data-run="${runId}"]`).innerText().then((t) => /%/.test(t)), false, "no percentage text");
    assert.equal(await p.locator("#widget").getAttribute("data-mode"), "live", "updates arrive over SSE");
    // completion: the run leaves the widget within one update
    await until("the run to leave the widget", async () => (await p.locator(`#widget li[data-run="${runId}"]`).count()) === 0, 60_000);
    await p.reload();
    assert.equal(await p.locator("#decision").getAttribute("data-class"), "ok");
    await p.goto("/admin/notifications");
    assert.equal(await p.locator(`.notifications li[data-run="${runId}"]`).count(), 1, "exactly one notification");
    await p.screenshot({ path: path.join(shots, "notifications.png"), fullPage: true });
  });

  await step("readonly: no start button; a forged start gets 403 and creates nothing", async () => {
    const ro = await signIn(browser, users.readonly);
    await ro.page.goto(`/admin/tenants/${tenantId}`);
    assert.equal(await ro.page.locator(".start-form").count(), 0);
    const before = await api(ro.page, "/api/v1/runs?type=synthetic&limit=500");
    const forged = await api(ro.page, `/api/v1/tenants/${tenantId}/runs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ type: "synthetic", params: { key: "forged" } }),
    });
    assert.equal(forged.status, 403);
    const form = await ro.page.evaluate(async (url) => {
      const r = await fetch(url, { method: "POST", body: new URLSearchParams({ type: "synthetic", key: "forged" }) });
      return r.status;
    }, `/admin/tenants/${tenantId}/runs`);
    assert.equal(form, 403);
    const after = await api(ro.page, "/api/v1/runs?type=synthetic&limit=500");
    assert.equal(after.body.runs.length, before.body.runs.length, "nothing created");
    await ro.context.close();
  });

  await step("owner: only what this build can run is offered; the rest is refused, nothing created", async () => {
    const ow = await signIn(browser, users.owner);
    await ow.page.goto(`/admin/tenants/${tenantId}`);
    const offered = await ow.page.locator("button[data-type]").evaluateAll((bs) => bs.map((b) => b.dataset.type));
    assert.deepEqual(offered, ["synthetic"], "the owner may start every type, yet only synthetic has a handler");
    const before = await api(ow.page, "/api/v1/runs?limit=500");
    const forged = await api(ow.page, `/api/v1/tenants/${tenantId}/runs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ type: "inventory.sync" }),
    });
    assert.equal(forged.status, 422);
    assert.equal(forged.body.error.code, "operation.unavailable");
    assert.equal(forged.body.error.field, "type");
    const after = await api(ow.page, "/api/v1/runs?limit=500");
    assert.equal(after.body.runs.length, before.body.runs.length, "nothing created");
    await ow.context.close();
  });

  await step("a reconciled run reads reconciled on dashboard, list, detail, widget and notification", async () => {
    const p = op.page;
    // reconcile a live run from the system plane while the operator watches
    const long = await api(p, "/api/v1/runs?status=running&limit=100");
    const victim = long.body.runs.find((r) => r.progress.mode === "counted");
    assert.ok(victim, "a long counted run is active");
    await p.goto(`/admin/operations`);
    await p.locator(`#widget li[data-run="${victim.id}"]`).waitFor();
    const plat = await signIn(browser, users.platform);
    const r = await api(plat.page, `/api/v1/system/runs/${victim.id}/reconcile`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ reason: "its tenant was offboarded" }),
    });
    assert.equal(r.status, 200);
    await until("the reconciled run to leave the widget", async () => (await p.locator(`#widget li[data-run="${victim.id}"]`).count()) === 0, 5_000);
    const rec = await api(p, "/api/v1/runs?problem=reconciled&limit=100");
    const ids = rec.body.runs.map((x) => x.id);
    assert.ok(ids.includes(victim.id) && ids.length >= 2, "the demo's reconciled run and this one");
    for (const id of ids) {
      await p.goto(`/admin/operations/${id}`);
      assert.equal(await p.locator("#decision").getAttribute("data-class"), "reconciled");
      assert.match(await p.locator("#decision").innerText(), /Reconciled/);
    }
    await p.screenshot({ path: path.join(shots, "run-detail-reconciled.png"), fullPage: true });
    await p.goto("/admin/operations?problem=reconciled");
    for (const id of ids) assert.equal(await p.locator(`table.runs tr[data-run="${id}"]`).getAttribute("data-class"), "reconciled");
    await p.screenshot({ path: path.join(shots, "operations.png"), fullPage: true });
    await p.goto(`/admin/tenants/${victim.tenant_id}`);
    const kpi = p.locator(`.kpi.reconciled a`);
    assert.ok(Number(await kpi.locator(".n").innerText()) >= 1);
    await Promise.all([p.waitForNavigation(), kpi.click()]);
    assert.match(p.url(), /problem=reconciled/);
    await p.goto("/admin/notifications");
    for (const id of ids) assert.equal(await p.locator(`.notifications li[data-run="${id}"]`).getAttribute("data-class"), "reconciled");
    await p.goto("/admin");
    assert.equal(await p.locator("figure.chart svg[role=img]").count(), 1, "the runs-per-day chart");
    await p.screenshot({ path: path.join(shots, "workspace-overview.png"), fullPage: true });
    // the list's filters survive navigation
    await p.goto("/admin/operations?problem=reconciled");
    await p.goto("/admin");
    await Promise.all([p.waitForNavigation(), p.click("#nav-operations")]);
    assert.match(p.url(), /problem=reconciled/, "the filter came back");
    assert.equal(await p.locator("select[name=problem]").inputValue(), "reconciled");
    // ... and says so, with one click to clear
    await p.locator("#restored-filters").waitFor();
    await Promise.all([p.waitForNavigation(), p.click("#restored-filters a")]);
    assert.equal(await p.locator("select[name=problem]").inputValue(), "", "cleared");
    assert.equal(await p.locator("#restored-filters").count(), 0);
    await p.goto("/admin/operations?problem=reconciled");
    assert.equal(await p.locator("#restored-filters").count(), 0, "a filter asked for is not a restored one");
    await plat.page.goto("/system/stuck");
    await plat.page.goto("/system");
    assert.equal(await plat.page.locator("figure.chart svg[role=img]").count(), 2, "runs per day and durations");
    await plat.page.screenshot({ path: path.join(shots, "system-runs.png"), fullPage: true });
    await plat.context.close();
  });

  await step("the login form submits every address the CLI accepts (an internationalized one too)", async () => {
    const context = await browser.newContext({ baseURL: base });
    const p = await context.newPage();
    await p.goto("/login");
    await p.fill("input[name=email]", "jörg.müller@demo.example");
    await p.fill("input[name=password]", "not the password at all");
    const [r] = await Promise.all([p.waitForNavigation(), p.click("button[type=submit]")]);
    assert.equal(r.status(), 401, "the server answered: the browser did not block the address");
    await context.close();
  });

  await step("platform operator: reconciling from the run page asks why and keeps the answer", async () => {
    const plat = await signIn(browser, users.platform);
    const active = await api(plat.page, "/api/v1/system/runs?status=queued&limit=50");
    const run = active.body.runs[0] ?? (await api(plat.page, "/api/v1/system/runs?status=running&limit=50")).body.runs[0];
    assert.ok(run, "an active run to end");
    await plat.page.goto(`/system/runs/${run.id}`);
    const form = plat.page.locator("form", { has: plat.page.locator('button[data-action="reconcile"]') });
    await form.locator("input[name=reason]").fill("duplicate of a run already done");
    await Promise.all([plat.page.waitForNavigation(), form.locator('button[data-action="reconcile"]').click()]);
    assert.equal(await plat.page.locator("#decision").getAttribute("data-class"), "reconciled");
    assert.match(await plat.page.content(), /duplicate of a run already done/);
    await plat.context.close();
  });

  await step("the system plane is 404 for a workspace owner", async () => {
    const ow = await signIn(browser, users.owner);
    const r = await ow.page.goto("/system");
    assert.equal(r.status(), 404);
    const api404 = await api(ow.page, "/api/v1/system/runs");
    assert.equal(api404.status, 404);
    await ow.context.close();
  });
  await step("owner: settings — a token shown once works until revoked; a member's role changes", async () => {
    const ow = await signIn(browser, users.owner);
    const p = ow.page;
    await Promise.all([p.waitForNavigation(), p.click("#nav-settings")]);
    await p.fill("#create-token input[name=name]", "browser walk");
    await p.fill("#create-token input[name=expires_in_days]", "7");
    await Promise.all([p.waitForNavigation(), p.click("#create-token button[type=submit]")]);
    const secret = (await p.locator("#new-token code.secret").innerText()).trim();
    assert.match(secret, /^tat_[0-9a-f]{64}$/);
    const withToken = () => api(p, "/api/v1/runs?limit=1", { headers: { authorization: `Bearer ${secret}` } });
    assert.equal((await withToken()).status, 200, "the shown token works");
    await p.goto("/admin/settings");
    assert.equal(await p.locator("#new-token").count(), 0, "shown once");
    assert.ok(!(await p.content()).includes(secret));
    const row = p.locator("table.tokens tr", { hasText: "browser walk" });
    await p.screenshot({ path: path.join(shots, "settings.png"), fullPage: true });
    await Promise.all([p.waitForNavigation(), row.locator("button", { hasText: "Revoke" }).click()]);
    assert.equal(await p.locator("table.tokens tr", { hasText: "browser walk" }).count(), 0);
    assert.equal((await withToken()).status, 401, "refused at the next request, session or not");
    // the readonly member becomes operator, and back
    const member = p.locator(`tr[data-member="${users.readonly.email}"]`);
    await member.locator("select[name=role]").selectOption("operator");
    await Promise.all([p.waitForNavigation(), member.locator("button", { hasText: "Change role" }).click()]);
    assert.equal(await p.locator(`tr[data-member="${users.readonly.email}"] select[name=role]`).inputValue(), "operator");
    const again = p.locator(`tr[data-member="${users.readonly.email}"]`);
    await again.locator("select[name=role]").selectOption("readonly");
    await Promise.all([p.waitForNavigation(), again.locator("button", { hasText: "Change role" }).click()]);
    assert.equal(await p.locator(`tr[data-member="${users.readonly.email}"] select[name=role]`).inputValue(), "readonly");
    await ow.context.close();
  });
  await op.context.close();
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  await browser.close();
  child.kill("SIGTERM");
}
console.log(`${results.length} browser scenario(s) passed on ${backend}${failed ? "; one failed" : ""}; screenshots in ${shots}`);
process.exit(failed ? 1 : 0);
