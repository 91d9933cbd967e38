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

import { execFileSync, spawn } from "node:child_process";
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

let demoDb = "";
// The CLI against the demo's database (what an administrator does beside the hub).
// On PostgreSQL the Graph tenant's secret needs a key (SQLite makes a key file).
const keyEnv = dbUrl.startsWith("postgres") ? { TENANTATLAS_SECRET_KEY: "kySimLsEqffIvL5CS+t03nHjkHo7DkJYfznx4pAEimk=" } : {};
const cli = (args) =>
  JSON.parse(
    execFileSync(bin, [...args, "--json"], {
      env: { ...process.env, ...keyEnv, TENANTATLAS_DATABASE_URL: demoDb, RUST_LOG: "warn" },
      encoding: "utf8",
    }),
  );

function startDemo() {
  const dir = mkdtempSync(path.join(tmpdir(), "ta-browser-"));
  demoDb = dbUrl || `sqlite://${dir}/demo.db`;
  const child = spawn(bin, ["demo", "--bind", `127.0.0.1:${port}`], {
    cwd: dir,
    env: { ...process.env, ...keyEnv, TENANTATLAS_DATABASE_URL: demoDb, RUST_LOG: "warn" },
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

  await step("operator: the start form — a refused start is a toast naming the field; toasts fold beyond three; tiles follow the widget", async () => {
    const p = op.page;
    await p.goto(`/admin/tenants/${tenantId}`);
    const form = p.locator("form.start-form[data-type=synthetic]");
    await form.locator("summary").click();
    await form.locator("input[name=units]").fill("");
    await form.locator("input[name=fail_every]").fill("2");
    await form.locator("button[type=submit]").click();
    const refused = p.locator("#toasts .toast.error").first();
    await refused.waitFor();
    assert.equal(await refused.getAttribute("data-field"), "fail_every");
    assert.match(await refused.innerText(), /^Not started: fail_every/);
    await p.screenshot({ path: path.join(shots, "start-refused.png"), fullPage: true });
    // four quick runs: five toasts, three shown and "2 more"
    const okTile = p.locator('.kpis a[data-class="ok"] .n');
    const okBefore = Number(await okTile.innerText());
    await form.locator("input[name=fail_every]").fill("");
    await form.locator("input[name=units]").fill("1");
    await form.locator("input[name=unit_ms]").fill("0");
    for (let i = 0; i < 4; i++) {
      await form.locator("button[type=submit]").click();
      await until("the start's toast", async () => (await p.locator("#toasts .toast").count()) >= i + 2);
    }
    const more = p.locator("#toasts-more");
    await until("toasts to fold", async () => (await more.isVisible()) && (await more.innerText()) === "2 more");
    assert.equal(await p.locator("#toasts .toast:visible").count(), 3, "three toasts shown");
    await more.click();
    assert.equal(await p.locator("#toasts .toast:visible").count(), 5, "all shown on request");
    // the tiles follow the widget, without a reload
    await until("the OK tile to count the finished runs", async () => Number(await okTile.innerText()) >= okBefore + 4, 30_000);
    assert.ok(Number(await p.locator("body").getAttribute("data-counts-updates")) > 0);
  });

  await step("long names wrap: no sideways scroll, nothing under the widget, at 1280 and 420 px", async () => {
    const long = "Contoso-" + "Subsidiary".repeat(5) + "-Prod"; // 63 characters, no space
    cli(["tenant", "add", "--workspace", "Demo MSP", long]);
    const started = cli(["--enable-synthetic", "run", "start", "synthetic", "--tenant", long, "--param", "units=2", "--param", "unit_ms=0"]);
    const ctx = await browser.newContext({ baseURL: base });
    const p = await ctx.newPage();
    await p.goto("/login");
    await p.fill("input[name=email]", users.operator.email);
    await p.fill("input[name=password]", users.operator.password);
    await Promise.all([p.waitForNavigation(), p.click("button[type=submit]")]);
    for (const [width, height] of [[1280, 800], [420, 800]]) {
      await p.setViewportSize({ width, height });
      for (const url of ["/admin", "/admin/operations", `/admin/tenants/${started.run.tenant_id}`, `/admin/operations/${started.run.id}`]) {
        await p.goto(url);
        assert.ok((await p.content()).includes(long), `${url} shows the long name`);
        const m = await p.evaluate((narrow) => {
          const main = document.querySelector("main").getBoundingClientRect();
          const aside = document.querySelector("aside#widget")?.getBoundingClientRect();
          const scrollers = "table.runs, table.tenants, table.units";
          const out = [...document.querySelectorAll("main *")]
            .filter((e) => !(narrow && e.closest(scrollers)))
            .filter((e) => e.getBoundingClientRect().right > main.right + 1)
            .map((e) => e.tagName + "." + e.className);
          return { scroll: document.documentElement.scrollWidth, inner: window.innerWidth, mainRight: main.right, asideLeft: aside ? aside.left : Infinity, out };
        }, width < 600);
        assert.ok(m.scroll <= m.inner, `${url} at ${width} px scrolls sideways: ${m.scroll} > ${m.inner}`);
        assert.deepEqual(m.out, [], `${url} at ${width} px: nothing wider than the content column`);
        if (width === 1280) assert.ok(m.mainRight <= m.asideLeft, `${url}: the content stops before the widget`);
      }
      await p.goto("/admin/operations");
      await p.screenshot({ path: path.join(shots, `operations-${width}px.png`), fullPage: true });
    }
    await ctx.close();
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
    assert.deepEqual(
      [...offered].sort(),
      ["provider.verify", "synthetic"],
      "the owner may start every type, yet only the connection check and synthetic have handlers",
    );
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

  await step("manager: every tenant's connection check shows on its page; a new check runs from the button", async () => {
    const mg = await signIn(browser, users.manager);
    const p = mg.page;
    const tenants = cli(["tenant", "list", "--workspace", "Demo MSP"]).tenants;
    const byName = (n) => tenants.find((t) => t.name === n);
    for (const [name, provider] of [
      ["Contoso Prod", "Directory (folder contoso)"],
      ["Woodgrove (Graph)", "Microsoft Graph"],
    ]) {
      const t = byName(name);
      assert.ok(t, `the demo has ${name}`);
      await until(`${name}: its connection check answered`, async () => {
        await p.goto(`/admin/tenants/${t.id}`);
        return (await p.locator("section.connection table.checks tbody tr").count()) === 13;
      });
      const panel = p.locator("section.connection");
      assert.match(await panel.locator(".provider").innerText(), new RegExp(provider.replace(/[()]/g, "\\$&")));
      assert.equal(await panel.getAttribute("data-ok"), "true", `${name}: every check passed`);
      assert.equal(await panel.locator("tr.bad").count(), 0);
    }
    const wood = byName("Woodgrove (Graph)");
    await p.screenshot({ path: path.join(shots, "tenant-connection.png"), fullPage: true });
    const before = await api(p, `/api/v1/tenants/${wood.id}/connection`);
    assert.equal(before.status, 200);
    assert.equal(before.body.provider, "graph");
    await p.click('button[data-type="provider.verify"]');
    await until("the start toast", async () => (await p.locator("#toasts .toast").count()) > 0);
    const after = await until("a new check that answered", async () => {
      const c = await api(p, `/api/v1/tenants/${wood.id}/connection`);
      const last = c.body.last_check;
      return last && last.run.id !== before.body.last_check.run.id && last.report ? c.body : null;
    }, 60_000);
    assert.equal(after.last_check.report.ok, true, JSON.stringify(after.last_check.report));
    assert.deepEqual(after.last_check.report.missing_permissions, []);
    await mg.context.close();
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
