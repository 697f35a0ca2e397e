// Coney's management UI: the shell (login, header, navigation), the hash
// router, and the one timer that refreshes the page live.
//
// Every view is a function (ctx, ...route args) -> {el, refresh, destroy}.
// The timer calls the current view's refresh() and samples /api/overview
// into a history the overview charts draw, whichever page is showing, so
// charts have data the moment one opens them. A hidden tab stops polling.

import { h, clear, fmtDuration } from './dom.js';
import { GET, login, logout, loggedIn, currentUser, tagsOf, setUnauthorizedHandler } from './api.js';
import { overviewView } from './overview.js';
import { connectionsView, connectionView, channelsView } from './conns.js';
import { exchangesView, exchangeView } from './exchanges.js';
import { queuesView, queueView } from './queues.js';
import { usersView, userView, vhostsView, definitionsView } from './admin.js';

const app = document.getElementById('app');

const routes = [
  [/^\/?$/, overviewView, 'overview'],
  [/^\/overview$/, overviewView, 'overview'],
  [/^\/connections$/, connectionsView, 'connections'],
  [/^\/connections\/([^/]+)$/, connectionView, 'connections'],
  [/^\/channels$/, channelsView, 'channels'],
  [/^\/exchanges$/, exchangesView, 'exchanges'],
  [/^\/exchanges\/([^/]+)\/([^/]*)$/, exchangeView, 'exchanges'],
  [/^\/queues$/, queuesView, 'queues'],
  [/^\/queues\/([^/]+)\/([^/]+)$/, queueView, 'queues'],
  [/^\/admin\/?$/, usersView, 'admin'],
  [/^\/admin\/users$/, usersView, 'admin'],
  [/^\/admin\/users\/([^/]+)$/, userView, 'admin'],
  [/^\/admin\/vhosts$/, vhostsView, 'admin'],
  [/^\/admin\/definitions$/, definitionsView, 'admin'],
];

const NAV = [
  ['overview', 'Overview', '#/'],
  ['connections', 'Connections', '#/connections'],
  ['channels', 'Channels', '#/channels'],
  ['exchanges', 'Exchanges', '#/exchanges'],
  ['queues', 'Queues', '#/queues'],
  ['admin', 'Admin', '#/admin/users'],
];

const INTERVALS = [[2000, 'every 2 s'], [5000, 'every 5 s'], [10000, 'every 10 s'], [30000, 'every 30 s'], [0, 'paused']];

// ---- overview history, shared with overview.js -----------------------------

export const live = { samples: [], overview: null, nodes: null, listeners: new Set() };
const HISTORY_MS = 30 * 60 * 1000;
// kept across reloads of the tab, like the credentials
try { live.samples = JSON.parse(sessionStorage.getItem('coney.history') || '[]'); } catch { live.samples = []; }

async function sample() {
  try {
    // /api/nodes needs monitoring; a management user gets the overview only
    const [ov, nodes] = await Promise.all([GET('/overview'), ctx().monitor ? GET('/nodes').catch(() => null) : null]);
    const qt = ov.queue_totals || {}, ms = ov.message_stats || {};
    const rate = (k) => (ms[k + '_details'] && ms[k + '_details'].rate) || 0;
    live.samples.push({
      t: Date.now(),
      v: {
        messages: qt.messages || 0, ready: qt.messages_ready || 0, unacked: qt.messages_unacknowledged || 0,
        publish: rate('publish'), deliver: rate('deliver_get'), ack: rate('ack'), confirm: rate('confirm'),
        redeliver: rate('redeliver'), unroutable: rate('return_unroutable') + rate('drop_unroutable'),
      },
    });
    const cut = Date.now() - HISTORY_MS;
    while (live.samples.length && live.samples[0].t < cut) live.samples.shift();
    try { sessionStorage.setItem('coney.history', JSON.stringify(live.samples)); } catch { /* full: keep it in memory */ }
    live.overview = ov;
    live.nodes = nodes;
    renderAlarms();
    renderFooter();
    for (const fn of live.listeners) fn();
  } catch { /* the view shows errors; the banner keeps its last state */ }
}

// ---- shell -----------------------------------------------------------------

const shell = {};
let current = null;         // {view, name}
let timer = 0;
let interval = +(localStorage.getItem('coney.interval') ?? 5000);
if (!INTERVALS.some(([ms]) => ms === interval)) interval = 5000;

export function ctx() {
  const user = currentUser();
  const tags = tagsOf(user);
  return {
    user,
    tags,
    admin: tags.includes('administrator'),
    monitor: tags.includes('administrator') || tags.includes('monitoring'),
    vhost: sessionStorage.getItem('coney.vhost') || '',
    go: (hash) => { location.hash = hash; },
  };
}

function logo(size = 28) {
  const ns = 'http://www.w3.org/2000/svg';
  const s = document.createElementNS(ns, 'svg');
  s.setAttribute('viewBox', '0 0 32 32');
  s.setAttribute('width', size);
  s.setAttribute('height', size);
  s.setAttribute('aria-hidden', 'true');
  s.innerHTML = '<rect width="32" height="32" rx="7" fill="var(--accent)"/><g fill="#fff">' +
    '<ellipse cx="11.5" cy="9" rx="3" ry="7" transform="rotate(-12 11.5 9)"/>' +
    '<ellipse cx="20.5" cy="9" rx="3" ry="7" transform="rotate(12 20.5 9)"/><circle cx="16" cy="20" r="8"/></g>' +
    '<circle cx="13" cy="19" r="1.3" fill="var(--accent)"/><circle cx="19" cy="19" r="1.3" fill="var(--accent)"/>';
  return s;
}

function showLogin(message) {
  stopTimer();
  if (current && current.view.destroy) current.view.destroy();
  current = null;
  const user = h('input#login-user', { name: 'username', autocomplete: 'username', required: true, value: '', autofocus: true });
  const pass = h('input#login-pass', { name: 'password', type: 'password', autocomplete: 'current-password' });
  const err = h('p.login-error', { role: 'alert' }, message || '');
  const button = h('button.btn.primary.wide', { type: 'submit' }, 'Log in');
  const form = h('form.login-card',
    h('div.login-brand', logo(40), h('div', h('h1', 'Coney'), h('p.muted', 'Management'))),
    h('label', { for: 'login-user' }, 'Username'), user,
    h('label', { for: 'login-pass' }, 'Password'), pass,
    err, button);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    button.disabled = true;
    err.textContent = '';
    try {
      await login(user.value, pass.value);
      start();
    } catch (ex) {
      err.textContent = ex.message;
      pass.select();
    } finally {
      button.disabled = false;
    }
  });
  clear(app, h('div.login', form));
  app.removeAttribute('aria-busy');
  user.focus();
}

function buildShell() {
  const c = ctx();
  shell.nav = h('nav.tabs', NAV.filter(([k]) => k !== 'admin' || c.admin).map(([k, label, href]) =>
    h('a', { href, dataset: { tab: k } }, label)));

  const vsel = h('select#vhost-select', { 'aria-label': 'Virtual host' }, h('option', { value: '' }, 'All vhosts'));
  GET('/vhosts?columns=name').then(list => {
    const names = (list || []).map(v => v.name).sort();
    const cur = ctx().vhost;
    clear(vsel, h('option', { value: '' }, 'All vhosts'), names.map(n => h('option', { value: n, selected: n === cur }, n)));
    if (cur && !names.includes(cur)) sessionStorage.removeItem('coney.vhost');
  }).catch(() => {});
  vsel.addEventListener('change', () => {
    if (vsel.value) sessionStorage.setItem('coney.vhost', vsel.value);
    else sessionStorage.removeItem('coney.vhost');
    route();
  });

  const isel = h('select#refresh-select', { 'aria-label': 'Refresh' },
    INTERVALS.map(([ms, label]) => h('option', { value: ms, selected: ms === interval }, 'Refresh ' + label)));
  isel.addEventListener('change', () => {
    interval = +isel.value;
    localStorage.setItem('coney.interval', String(interval));
    startTimer();
  });

  shell.pulse = h('span.pulse', { title: 'Live' });
  const who = h('div.who', h('span.user-name', c.user ? c.user.name : ''),
    c.tags.length ? h('span.user-tags', c.tags.join(', ')) : null,
    h('button.btn.ghost.small#logout', { type: 'button', onclick: () => { logout(); live.samples = []; window.history.replaceState(null, '', '#/'); showLogin('Logged out.'); } }, 'Log out'));

  shell.alarms = h('div#alarms');
  shell.main = h('main#view', { tabindex: -1 });
  shell.footer = h('footer.foot');
  clear(app,
    h('header.top',
      h('a.brand', { href: '#/' }, logo(28), h('span', 'Coney')),
      shell.nav,
      h('div.top-right', shell.pulse, vsel, isel, who)),
    shell.alarms, shell.main, shell.footer);
  app.removeAttribute('aria-busy');
}

function renderAlarms() {
  if (!shell.alarms) return;
  const nodes = Array.isArray(live.nodes) ? live.nodes : [];
  const alarms = [];
  for (const n of nodes) {
    if (n.mem_alarm) alarms.push(`Memory alarm on ${n.name}: publishers are blocked until memory use falls below the limit.`);
    if (n.disk_free_alarm) alarms.push(`Disk alarm on ${n.name}: free disk space is below ${n.disk_free_limit ? Math.round(n.disk_free_limit / 1048576) + ' MiB' : 'its limit'}; publishers are blocked.`);
  }
  clear(shell.alarms, alarms.map(a => h('div.alarm', { role: 'alert' }, h('b', 'Alarm '), a)));
}

function renderFooter() {
  const ov = live.overview;
  if (!shell.footer || !ov) return;
  const node = Array.isArray(live.nodes) && live.nodes[0];
  clear(shell.footer,
    h('span', `${ov.product_name || 'Coney'} ${ov.product_version || ov.rabbitmq_version || ''}`),
    ov.node ? h('span', ov.node) : null,
    node && node.uptime !== undefined ? h('span', 'up ' + fmtDuration(node.uptime)) : null,
    h('span', 'HTTP API at ', h('code', '/api')));
}

// ---- routing -----------------------------------------------------------------

function route() {
  if (!loggedIn()) return showLogin();
  if (!shell.main) buildShell();
  // matched still encoded, so a name holding "/" or "%" stays one segment;
  // each segment is decoded on its own
  const path = location.hash.replace(/^#/, '').split('?')[0] || '/';
  const decode = (x) => { try { return decodeURIComponent(x); } catch { return x; } };
  let match = null;
  for (const [re, view, tab] of routes) {
    const m = re.exec(path);
    if (m) { match = { view, tab, args: m.slice(1).map(decode) }; break; }
  }
  if (current && current.view.destroy) current.view.destroy();
  current = null;
  for (const a of shell.nav.querySelectorAll('a')) a.classList.toggle('active', !!match && a.dataset.tab === match.tab);
  if (!match) {
    clear(shell.main, h('div.notfound', h('h2', 'Not found'), h('p', 'No page at ', h('code', decode(path)), '. ', h('a', { href: '#/' }, 'Back to the overview'))));
    return;
  }
  if (match.tab === 'admin' && !ctx().admin) {
    clear(shell.main, h('div.notfound', h('h2', 'Administrators only'), h('p', 'The Admin pages need the administrator tag. ', h('a', { href: '#/' }, 'Back to the overview'))));
    return;
  }
  const view = match.view(ctx(), ...match.args);
  current = { view, tab: match.tab };
  clear(shell.main, view.el);
  document.title = (view.title ? view.title + ' · ' : '') + 'Coney';
  if (view.refresh) view.refresh();
  startTimer();
}

function stopTimer() { clearTimeout(timer); timer = 0; }

function startTimer() {
  stopTimer();
  if (!interval || document.hidden) return;
  timer = setTimeout(tick, interval);
}

async function tick() {
  shell.pulse && shell.pulse.classList.add('on');
  try {
    await Promise.all([sample(), current && current.view.refresh ? current.view.refresh() : null]);
  } finally {
    setTimeout(() => shell.pulse && shell.pulse.classList.remove('on'), 300);
    startTimer();
  }
}

function start() {
  shell.main = null;
  buildShell();
  // two samples a second apart, so the charts draw lines from the start
  sample().then(() => { if (live.samples.length < 2) setTimeout(sample, 1000); });
  route();
}

setUnauthorizedHandler(() => { logout(); showLogin('Your session ended; log in again.'); });
window.addEventListener('hashchange', route);
// "/" jumps to the page's filter box, as in most list UIs
document.addEventListener('keydown', (e) => {
  if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
  const f = document.querySelector('main input.filter');
  if (f) { e.preventDefault(); f.focus(); f.select(); }
});
document.addEventListener('visibilitychange', () => {
  if (document.hidden) stopTimer();
  else if (loggedIn() && current) tick();
});

if (loggedIn()) start(); else showLogin();
