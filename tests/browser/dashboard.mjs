// Browser steps for the dashboard's tests (tests/Pester/Dashboard.Browser.Tests.ps1), in real headless Chromium
// driven by playwright-core: node dashboard.mjs <scenario> <dashboard url> [argument]. Prints one JSON object
// with what the page showed; the Pester test asserts on it and on the database.
import { chromium } from "playwright-core";

const [scenario, base, argument] = process.argv.slice(2);
const executablePath = process.env.PQ_CHROMIUM || "/usr/bin/chromium";
// The machine's network is closed: no background connections, no first-run work.
const args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"];

const browser = await chromium.launch({ executablePath, headless: true, args });
const result = { scenario, dialogs: [], consoleErrors: [], pageErrors: [] };
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("dialog", async dialog => { result.dialogs.push(dialog.message()); await dialog.dismiss(); });
  page.on("console", message => { if (message.type() === "error") result.consoleErrors.push(message.text()); });
  page.on("pageerror", error => result.pageErrors.push(String(error)));

  const open = async hash => {
    await page.goto(base + (hash || ""));
    await page.waitForSelector('body[data-loaded="true"]', { timeout: 15000 });
  };
  const counts = async () => Object.fromEntries(await page.$$eval("#counts .card", cards =>
    cards.map(c => [c.dataset.status, Number(c.querySelector(".count").textContent)])));
  const rowKeys = () => page.$$eval("#tasks tbody tr", rows => rows.map(r => r.dataset.key));
  // Clicks an action button, confirms in the page's dialog, and waits for the server's answer.
  const act = async (action, selector) => {
    await page.click(selector || `button[data-action="${action}"]`);
    await page.waitForSelector("#confirm[open]");
    const answer = page.waitForResponse(r => r.url().endsWith("/api/" + action));
    await page.click("#confirm-yes");
    result.status = (await answer).status();
    await page.waitForFunction(() => /done|failed/.test(document.getElementById("status").textContent), null, { timeout: 10000 });
    result.statusText = await page.textContent("#status");
  };

  switch (scenario) {
    case "counts":
      await open("#/");
      result.counts = await counts();
      result.types = await page.$$eval("#types tbody tr", rows => rows.map(r => r.dataset.name));
      result.users = await page.$$eval("#users tbody tr", rows => rows.map(r => r.dataset.name));
      break;
    case "live": {
      // The overview refreshes by itself: argument is the Waiting count to wait for after the test submits more.
      await open("#/");
      result.before = (await counts()).Waiting;
      process.stdout.write(JSON.stringify({ ready: true }) + "\n");
      await page.waitForFunction(n => Number(document.querySelector('#counts [data-status="Waiting"] .count')?.textContent) === n,
        Number(argument), { timeout: 20000 });
      result.after = (await counts()).Waiting;
      break;
    }
    case "filter": {
      // argument: "<field>=<value>" set in the filter form (a select or a text box), then Filter.
      await open("#/tasks");
      result.all = await rowKeys();
      const [field, value] = argument.split("=");
      const input = await page.$(`#filters [name="${field}"]`);
      if ((await input.evaluate(e => e.tagName)) === "SELECT") await input.selectOption(value); else await input.fill(value);
      await page.click('#filters button[type="submit"]');
      await page.waitForFunction(f => location.hash.includes(f), field + "=");
      await page.waitForSelector('body[data-loaded="true"]');
      result.filtered = await rowKeys();
      result.hash = await page.evaluate(() => location.hash);
      break;
    }
    case "page": {
      // Paging: the first page, then Older.
      await open("#/tasks?" + (argument || ""));
      result.first = await rowKeys();
      await page.click("#older");
      await page.waitForFunction(() => location.hash.includes("before="));
      await page.waitForSelector('body[data-loaded="true"]');
      result.second = await rowKeys();
      result.hasOlder = (await page.$("#older")) !== null;
      break;
    }
    case "task":
      await open("#/task?key=" + encodeURIComponent(argument));
      result.key = await page.textContent("#task-key");
      result.fields = Object.fromEntries(await page.$$eval("#task table.fields tr", rows => rows.map(r => [r.querySelector("th").textContent, r.querySelector("td").textContent])));
      result.attempts = await page.$$eval("#history .attempt", items => items.map(a => ({
        attempt: Number(a.dataset.attempt), outcome: a.dataset.outcome,
        message: a.querySelector(".message")?.textContent ?? null, output: a.querySelector(".output")?.textContent ?? null })));
      result.actions = await page.$$eval("button.action", buttons => buttons.map(b => b.dataset.action));
      break;
    case "cancel":
    case "rerun":
    case "finish":
    case "remove":
      await open("#/task?key=" + encodeURIComponent(argument));
      await act("tasks/" + scenario);
      break;
    case "click": {
      // argument: {"hash": view, "selector": an action button, "action": its endpoint}; confirms and waits.
      const { hash, selector, action } = JSON.parse(argument);
      await open(hash);
      await act(action, selector);
      await page.waitForSelector('body[data-loaded="true"]');
      result.buttons = await page.$$eval("button.action", buttons => buttons.map(b => b.closest("tr")?.dataset.name ?? b.closest("tr")?.dataset.scope ?? b.textContent));
      break;
    }
    case "suspend-schedule":
      await open("#/schedules");
      await act("schedules/suspend");
      result.paused = await page.$$eval("#schedules tbody tr", rows => rows.map(r => r.children[6].textContent));
      break;
    case "hostile": {
      // argument: the hostile key. It must show as its characters, and nothing it holds may run.
      await page.addInitScript(() => { window.__pwned = 0; });
      await open("#/tasks");
      result.cells = await page.$$eval("#tasks tbody tr td:first-child", cells => cells.map(c => c.textContent));
      result.images = await page.$$eval("img", imgs => imgs.length);
      result.scripts = await page.$$eval("script", s => s.map(x => x.getAttribute("src")));
      await page.$$eval("#tasks a.key", (links, key) => links.find(a => a.textContent === key).click(), argument);
      await page.waitForFunction(() => location.hash.startsWith("#/task?"));
      await page.waitForSelector('body[data-loaded="true"]');
      result.detailKey = await page.textContent("#task-key");
      result.data = await page.textContent("pre.data");
      result.images += await page.$$eval("img", imgs => imgs.length);
      result.pwned = await page.evaluate(() => window.__pwned);
      break;
    }
    case "readonly": {
      await open("#/");
      result.mode = await page.textContent("#mode");
      result.overviewActions = await page.$$eval("button.action", b => b.length);
      await open("#/task?key=" + encodeURIComponent(argument));
      result.taskActions = await page.$$eval("button.action", b => b.length);
      // A POST made from the dashboard's own page, with a made-up token: refused.
      result.forged = await page.evaluate(async key => {
        const r = await fetch("/api/tasks/cancel", { method: "POST", headers: { "Content-Type": "application/json", "X-PQ-AntiForgery": "made-up" }, body: JSON.stringify({ key }) });
        return { status: r.status, body: await r.json() };
      }, argument);
      break;
    }
    case "cross-site": {
      // Another site's page posts a form to the dashboard (the classic forgery): the dashboard must refuse it.
      const target = base + "api/tasks/cancel";
      const answer = page.waitForResponse(r => r.url() === target);
      await page.setContent(`<form method="post" action="${target}" enctype="text/plain"><input name='{"key":"${argument}","x":"' value='"}'></form>`);
      await page.evaluate(() => document.forms[0].submit());
      const response = await answer;
      result.status = response.status();
      result.body = await response.text();
      break;
    }
    case "signin": {
      // argument: the access token. First a wrong one, then the right one.
      await page.goto(base);
      result.signinShown = (await page.$("form[action='/signin']")) !== null;
      await page.fill("#token", "wrong-token-wrong-token");
      await page.click("button[type=submit]");
      await page.waitForSelector("#denied:not([hidden])");
      result.deniedShown = true;
      await page.fill("#token", argument);
      await page.click("button[type=submit]");
      await page.waitForSelector('body[data-loaded="true"]', { timeout: 15000 });
      result.counts = await counts();
      result.cookies = (await context.cookies()).map(c => ({ name: c.name, value: c.value, httpOnly: c.httpOnly, sameSite: c.sameSite }));
      break;
    }
    case "screenshot":
      await open("#/");
      await page.screenshot({ path: argument, fullPage: true });
      result.path = argument;
      break;
    default:
      throw new Error("Unknown scenario " + scenario);
  }
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result) + "\n");
