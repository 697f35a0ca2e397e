// The web UI in a real browser: Debian's chromium driven by playwright-core.
//
//   CONEY_UI_URL=http://127.0.0.1:15672 node tests/browser/ui.test.mjs
//
// Logs in as guest, declares a queue with the form, publishes to it through
// the default exchange, waits for the live refresh to show one message,
// gets it back, then fills the broker with 2,000 more queues and checks the
// queue list pages and filters them. Every step leaves a screenshot in
// CONEY_ARTIFACTS (default build/browser-artifacts). Exits non-zero on the
// first failure, after a screenshot of the page as it was.
//
// Environment: CONEY_UI_URL (required), CONEY_USER/CONEY_PASS (guest),
// CONEY_CHROMIUM (/usr/bin/chromium), CONEY_ARTIFACTS, CONEY_BULK_QUEUES
// (2000), CONEY_HEADED=1 to watch.

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const base = (process.env.CONEY_UI_URL || '').replace(/\/$/, '');
const user = process.env.CONEY_USER || 'guest';
const pass = process.env.CONEY_PASS || 'guest';
const artifacts = process.env.CONEY_ARTIFACTS || path.resolve(here, '../../build/browser-artifacts');
const bulk = +(process.env.CONEY_BULK_QUEUES || 2000);
const TIMEOUT = 20000 * (process.env.CONEY_SANITIZED ? 3 : 1);

if (!base) {
  console.error('CONEY_UI_URL is not set');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const auth = 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64');
async function api(method, p, body) {
  const r = await fetch(base + '/api' + p, {
    method, headers: { Authorization: auth, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`${method} /api${p}: ${r.status} ${await r.text()}`);
  const t = await r.text();
  return t ? JSON.parse(t) : null;
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

const browser = await chromium.launch({
  executablePath: process.env.CONEY_CHROMIUM || '/usr/bin/chromium',
  headless: !process.env.CONEY_HEADED,
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, colorScheme: 'light' });
context.setDefaultTimeout(TIMEOUT);
const page = await context.newPage();
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(e.message));
// Failed requests are reported by URL (chromium's console line names no
// URL); the wrong-password step's 401 is the one expected.
page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) pageErrors.push('console: ' + m.text()); });
page.on('response', (r) => {
  if (r.status() >= 400 && !(r.status() === 401 && r.url().endsWith('/api/whoami'))) {
    pageErrors.push(`${r.request().method()} ${r.url()}: ${r.status()}`);
  }
});

let shots = 0;
async function shot(name, opts = {}) {
  const file = path.join(artifacts, `${String(++shots).padStart(2, '0')}-${name}.png`);
  // at the top, so that the sticky header sits where it belongs in a full-page shot
  if (opts.fullPage) await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: file, fullPage: !!opts.fullPage });
  console.log(`  screenshot ${path.relative(process.cwd(), file)}`);
}

let failed = false;
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed = true;
    console.log(`FAIL ${name}: ${e.message}`);
    try { await page.screenshot({ path: path.join(artifacts, 'failure.png'), fullPage: true }); } catch { /* page gone */ }
    throw e;
  }
}

const qname = 'ui-test-' + Math.random().toString(36).slice(2, 10);
const payload = 'Hello from the browser test: ' + new Date().toISOString();
// a toast from an earlier step may still be showing: wait for the newest
const toastSays = (text) => page.locator('.toast', { hasText: text }).last().waitFor();
let total = 0;    // queues on the broker once the bulk ones exist
const qrow = (name) => page.locator(`section.list tbody tr[data-name="${name}"]`);

try {
  await step('the login page loads with no CDN and no errors', async () => {
    const requests = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(base + '/');
    await page.locator('#login-user').waitFor();
    const foreign = requests.filter(u => !u.startsWith(base));
    check(!foreign.length, 'requests left the broker: ' + foreign.join(', '));
    await shot('login');
  });

  await step('a wrong password is refused on the page', async () => {
    await page.fill('#login-user', user);
    await page.fill('#login-pass', pass + '-wrong');
    await page.click('form.login-card button[type=submit]');
    await page.locator('.login-error').filter({ hasText: /./ }).waitFor();
    check(await page.locator('header.top').count() === 0, 'logged in with a wrong password');
  });

  await step('log in as guest and see the overview', async () => {
    await page.fill('#login-pass', pass);
    await page.click('form.login-card button[type=submit]');
    await page.locator('header.top .user-name', { hasText: user }).waitFor();
    await page.locator('.overview .stat', { hasText: 'Queues' }).waitFor();
    await page.locator('.overview table tbody tr', { hasText: 'amqp' }).waitFor();
    const stored = await page.evaluate(() => ({ s: sessionStorage.getItem('coney.auth'), l: JSON.stringify(localStorage) }));
    check(stored.s && stored.s.startsWith('Basic '), 'credentials are not in sessionStorage');
    check(!stored.l.includes(stored.s), 'credentials leaked into localStorage');
    // live refresh every 2 s for the rest of the test
    await page.selectOption('#refresh-select', '2000');
    await page.waitForTimeout(2500);
    await shot('overview');
  });

  await step('declare a queue with the form', async () => {
    await page.click('nav.tabs a[data-tab=queues]');
    const form = page.locator('#declare-queue');
    await form.waitFor();
    await form.locator('input[name=name]').fill(qname);
    await form.locator('button[type=submit]').click();
    await toastSays(`Queue ${qname} declared`);
    // on a broker with many queues it may sit on a later page: filter for it
    await page.locator('section.list[data-list=queues] input.filter').fill(qname);
    await qrow(qname).waitFor();
    const q = await api('GET', `/queues/%2F/${encodeURIComponent(qname)}`);
    check(q.name === qname && q.durable === true, 'the API does not show the declared queue as durable');
    await shot('queue-declared');
  });

  await step('publish a message to it through the default exchange', async () => {
    await qrow(qname).locator('a').first().click();
    await page.locator('h1.object-name', { hasText: qname }).waitFor();
    const form = page.locator('#publish form.publish-form');
    check(await form.locator('input[name=routing_key]').inputValue() === qname, 'routing key is not the queue name');
    await form.locator('textarea[name=payload]').fill(payload);
    await form.locator('button[type=submit]').click();
    await toastSays('Message published');
  });

  await step('the live refresh shows one message', async () => {
    await page.locator('.queue-stats [data-stat=messages]', { hasText: /^1$/ }).waitFor();
    await page.locator('.queue-stats [data-stat=messages_ready]', { hasText: /^1$/ }).waitFor();
    await shot('message-published', { fullPage: true });
    // the list counts it too
    await page.click('nav.tabs a[data-tab=queues]');
    await qrow(qname).locator('td[data-col=messages]', { hasText: /^1$/ }).waitFor();
  });

  await step('get the message back with the get-message form', async () => {
    await qrow(qname).locator('a').first().click();
    const form = page.locator('#get-form');
    await form.waitFor();
    await form.locator('select[name=ackmode]').selectOption('ack_requeue_false');
    await form.locator('button[type=submit]').click();
    const msg = page.locator('#get-results article.message').first();
    await msg.locator('pre.payload', { hasText: payload }).waitFor();
    check((await msg.locator('pre.payload').textContent()) === payload, 'payload differs');
    await page.locator('.queue-stats [data-stat=messages]', { hasText: /^0$/ }).waitFor();
    await shot('message-got', { fullPage: true });
  });

  await step('declare an exchange, bind the queue to it and publish through it', async () => {
    const ex = qname + '.fanout';
    await page.click('nav.tabs a[data-tab=exchanges]');
    await page.click('summary:has-text("Add an exchange")');
    await page.fill('#add-exchange input[name=name]', ex);
    await page.selectOption('#add-exchange select[name=type]', 'fanout');
    await page.click('#add-exchange button[type=submit]');
    await toastSays(`Exchange ${ex} declared`);
    await page.goto(`${base}/#/queues/%2F/${encodeURIComponent(qname)}`);
    await page.click('summary:has-text("Bind this queue")');
    const bind = page.locator('[data-bindings=queue] form');
    await bind.locator('input[name=other]').fill(ex);
    await bind.locator('button[type=submit]').click();
    await page.locator('[data-bindings=queue] tbody tr', { hasText: ex }).waitFor();
    await page.goto(`${base}/#/exchanges/%2F/${encodeURIComponent(ex)}`);
    await page.locator('[data-bindings=source] tbody tr', { hasText: qname }).waitFor();
    await page.click('summary:has-text("Publish a message")');
    await page.fill('#publish textarea[name=payload]', 'through the fanout');
    await page.click('#publish button[type=submit]');
    await toastSays('Message published');
    await page.goto(`${base}/#/queues/%2F/${encodeURIComponent(qname)}`);
    await page.locator('.queue-stats [data-stat=messages]', { hasText: /^1$/ }).waitFor();
    await page.click('button:has-text("Purge")');
    await page.click('button:has-text("Click again to purge")');
    await page.locator('.queue-stats [data-stat=messages]', { hasText: /^0$/ }).waitFor();
  });

  await step('add a user with the admin forms; it sees no Admin tab', async () => {
    await page.click('nav.tabs a[data-tab=admin]');
    await page.click('summary:has-text("Add a user")');
    await page.fill('#add-user input[name=name]', qname + '-viewer');
    await page.fill('#add-user input[name=password]', 'viewer-pw');
    await page.click('#add-user button.link:has-text("management")');
    await page.click('#add-user button[type=submit]');
    await toastSays(`User ${qname}-viewer saved`);
    await page.goto(`${base}/#/admin/users/${encodeURIComponent(qname + '-viewer')}`);
    await page.click('summary:has-text("Set permissions")');
    await page.click('details[open] button:has-text("Set permissions")');
    await page.locator('.card tbody tr', { hasText: '.*' }).first().waitFor();
    await page.click('#logout');
    await page.fill('#login-user', qname + '-viewer');
    await page.fill('#login-pass', 'viewer-pw');
    await page.click('form.login-card button[type=submit]');
    await page.locator('header.top .user-name', { hasText: qname + '-viewer' }).waitFor();
    check(await page.locator('nav.tabs a[data-tab=admin]').count() === 0, 'a management user sees the Admin tab');
    await page.click('nav.tabs a[data-tab=queues]');
    await qrow(qname).waitFor();
    await page.click('#logout');
    await page.fill('#login-user', user);
    await page.fill('#login-pass', pass);
    await page.click('form.login-card button[type=submit]');
    await page.locator('header.top .user-name', { hasText: user }).waitFor();
  });

  await step(`create ${bulk} queues through the HTTP API`, async () => {
    const names = Array.from({ length: bulk }, (_, i) => `ui-bulk-${String(i).padStart(4, '0')}`);
    let next = 0;
    const worker = async () => {
      while (next < names.length) {
        const n = names[next++];
        await api('PUT', `/queues/%2F/${n}`, { durable: false, auto_delete: false, arguments: {} });
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    total = (await api('GET', '/queues?page=1&page_size=1&pagination=true')).total_count;
    check(total >= bulk + 1, `the API counts ${total} queues`);
  });

  await step('the queue list shows one page of them with paging', async () => {
    await page.click('nav.tabs a[data-tab=queues]');
    const list = page.locator('section.list[data-list=queues]');
    await list.locator('input.filter').fill('');
    await list.locator('.count', { hasText: `of ${total.toLocaleString('en-US')} queues` }).waitFor();
    const rows = list.locator('tbody tr');
    const perPage = +(await list.locator('select').first().inputValue());
    check(await rows.count() === perPage, `expected ${perPage} rows, saw ${await rows.count()}`);
    const pages = Math.ceil(total / perPage);
    await list.locator('.page-of', { hasText: `of ${pages.toLocaleString('en-US')}` }).waitFor();
    const firstOnPage1 = await rows.first().getAttribute('data-name');
    await shot('many-queues');
    await list.locator('button[title="Next page"]').click();
    await list.locator('.count', { hasText: `${(perPage + 1).toLocaleString('en-US')}–${(2 * perPage).toLocaleString('en-US')} of` }).waitFor();
    await page.waitForFunction((n) => {
      const r = document.querySelector('section.list[data-list=queues] tbody tr');
      return r && r.dataset.name !== n;
    }, firstOnPage1);
    check(await rows.count() === perPage, 'page 2 is not a full page');
    await list.locator('button[title="Last page"]').click();
    await list.locator('.count', { hasText: `${((pages - 1) * perPage + 1).toLocaleString('en-US')}–` }).waitFor();
    await shot('many-queues-last-page');
  });

  await step('the filter box narrows the list', async () => {
    const list = page.locator('section.list[data-list=queues]');
    await list.locator('input.filter').fill('ui-bulk-199');
    await list.locator('.count', { hasText: 'of 10 matching' }).waitFor();
    const names = await list.locator('tbody tr').evaluateAll(rs => rs.map(r => r.dataset.name));
    check(names.length === 10 && names.every(n => n.startsWith('ui-bulk-199')), 'filtered rows: ' + names.join(', '));
    await shot('queues-filtered');
    await list.locator('input.filter').fill('no-such-queue-at-all');
    await list.locator('td.empty', { hasText: 'No queues match' }).waitFor();
    await list.locator('input.filter').fill('');
    await list.locator('.count', { hasText: `of ${total.toLocaleString('en-US')} queues` }).waitFor();
  });

  await step('the other pages render', async () => {
    for (const [tab, marker] of [['exchanges', 'section.list[data-list=exchanges] tbody tr[data-name="amq.direct"]'],
      ['connections', 'section.list[data-list=connections]'], ['channels', 'section.list[data-list=channels]'],
      ['admin', 'section.list[data-list=users] tbody tr[data-name="guest"]']]) {
      await page.click(`nav.tabs a[data-tab=${tab}]`);
      await page.locator(marker).first().waitFor();
    }
    await page.click('nav.subnav a[href="#/admin/vhosts"]');
    await page.locator('section.list[data-list=vhosts] tbody tr[data-name="/"]').waitFor();
    await page.click('nav.subnav a[href="#/admin/definitions"]');
    await page.locator('button', { hasText: 'Download definitions' }).waitFor();
    await page.click('nav.tabs a[data-tab=overview]');
    await page.locator('.overview .stat', { hasText: 'Queues' }).locator('.stat-value', { hasText: total.toLocaleString('en-US') }).waitFor();
    await page.waitForTimeout(2500);
    await shot('overview-after', { fullPage: true });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.waitForTimeout(300);
    await shot('overview-dark');
    await page.emulateMedia({ colorScheme: 'light' });
  });

  await step('the page logged no errors', async () => {
    check(!pageErrors.length, pageErrors.join('\n'));
  });
} catch {
  failed = true;
} finally {
  await browser.close();
}
console.log(failed ? 'browser test FAILED' : 'browser test passed');
process.exit(failed ? 1 : 0);
