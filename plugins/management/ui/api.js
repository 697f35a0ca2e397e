// The management API client. Credentials are HTTP Basic, kept in this
// tab's sessionStorage (gone when the tab closes), and sent explicitly on
// every fetch with credentials: 'omit', so the browser never caches them
// and never pops its own login dialog on a 401.

const KEY = 'coney.auth';
const USER = 'coney.user';

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

function b64utf8(s) {
  let bin = '';
  for (const byte of new TextEncoder().encode(s)) bin += String.fromCharCode(byte);
  return btoa(bin);
}

export function loggedIn() { return !!sessionStorage.getItem(KEY); }
export function currentUser() {
  try { return JSON.parse(sessionStorage.getItem(USER) || 'null'); } catch { return null; }
}

export function logout() {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(USER);
  sessionStorage.removeItem('coney.history');
}

// Checks the credentials with /api/whoami; keeps them only if they work.
export async function login(username, password) {
  const auth = 'Basic ' + b64utf8(username + ':' + password);
  const r = await fetch('/api/whoami', { headers: { Authorization: auth, 'X-Requested-With': 'XMLHttpRequest' }, credentials: 'omit', cache: 'no-store' });
  if (r.status === 401 || r.status === 403) {
    let reason = 'Login failed';
    try { const j = await r.json(); reason = j.reason || reason; } catch { /* not JSON */ }
    throw new ApiError(r.status, reason);
  }
  if (!r.ok) throw new ApiError(r.status, `The broker answered ${r.status} ${r.statusText}`);
  const who = await r.json();
  sessionStorage.setItem(KEY, auth);
  sessionStorage.setItem(USER, JSON.stringify(who));
  return who;
}

// Tags as a list whether the API sends "a,b" or ["a","b"].
export function tagsOf(user) {
  const t = user && user.tags;
  if (Array.isArray(t)) return t;
  return String(t || '').split(',').map(s => s.trim()).filter(Boolean);
}

export async function api(method, path, body, extraHeaders) {
  // X-Requested-With: the API then leaves out WWW-Authenticate on a 401
  const headers = { Authorization: sessionStorage.getItem(KEY) || '', 'X-Requested-With': 'XMLHttpRequest', ...(extraHeaders || {}) };
  const init = { method, headers, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch('/api' + path, init);
  } catch (e) {
    throw new ApiError(0, 'The broker is not answering');
  }
  const text = await r.text();
  let json = null;
  if (text) { try { json = JSON.parse(text); } catch { json = null; } }
  if (r.status === 401) {
    onUnauthorized();
    throw new ApiError(401, (json && json.reason) || 'Not logged in', json);
  }
  if (!r.ok) {
    const reason = json && (json.reason || json.error);
    throw new ApiError(r.status, reason ? String(reason) : `${r.status} ${r.statusText}`, json);
  }
  return json;
}

export const GET = (p) => api('GET', p);
export const PUT = (p, b) => api('PUT', p, b ?? {});
export const POST = (p, b) => api('POST', p, b ?? {});
export const DELETE = (p, headers) => api('DELETE', p, undefined, headers);

// Path segment: '/' must travel as %2F.
export const seg = (s) => encodeURIComponent(s);

// The default exchange has no name; RabbitMQ's API calls it amq.default.
export const exchangeSeg = (name) => seg(name === '' ? 'amq.default' : name);

// A list endpoint, paged on the server. Falls back to paging on the client
// if the endpoint answers with a plain array.
export async function getPage(path, { page = 1, pageSize = 100, name = '', regex = false, sort = '', reverse = false, columns = '' } = {}) {
  const q = new URLSearchParams({ page: String(page), page_size: String(pageSize), pagination: 'true' });
  if (name) { q.set('name', name); q.set('use_regex', regex ? 'true' : 'false'); }
  if (sort) { q.set('sort', sort); q.set('sort_reverse', reverse ? 'true' : 'false'); }
  if (columns) q.set('columns', columns);
  const r = await GET(path + (path.includes('?') ? '&' : '?') + q);
  if (Array.isArray(r)) return pageLocally(r, { page, pageSize, name, regex, sort, reverse });
  return r;
}

function pageLocally(all, { page, pageSize, name, regex, sort, reverse }) {
  let items = all;
  if (name) {
    let test;
    if (regex) {
      try { const re = new RegExp(name); test = (s) => re.test(s); } catch { test = () => false; }
    } else {
      const n = name.toLowerCase();
      test = (s) => s.toLowerCase().includes(n);
    }
    items = items.filter(i => test(String(i.name ?? '')));
  }
  if (sort) {
    const key = (i) => sort.split('.').reduce((v, k) => (v == null ? v : v[k]), i);
    items = [...items].sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === y) return 0;
      if (x === undefined || x === null) return 1;
      if (y === undefined || y === null) return -1;
      return x < y ? -1 : 1;
    });
    if (reverse) items.reverse();
  }
  const pageCount = Math.max(1, Math.ceil(items.length / pageSize));
  const p = Math.min(page, pageCount);
  return {
    items: items.slice((p - 1) * pageSize, p * pageSize),
    page: p, page_size: pageSize, page_count: pageCount,
    filtered_count: items.length, item_count: Math.min(pageSize, items.length - (p - 1) * pageSize),
    total_count: all.length,
  };
}
