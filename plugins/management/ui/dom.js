// Small DOM and formatting helpers shared by every view. No framework:
// views build elements with h() and replace the parts that change.

// h('div.card#id', {onclick, class, ...attrs}, child, [children], 'text')
export function h(spec, attrs, ...children) {
  const m = /^([a-z0-9-]+)?((?:[.#][\w-]+)*)$/i.exec(spec);
  const el = document.createElement((m && m[1]) || 'div');
  if (m && m[2]) {
    for (const part of m[2].match(/[.#][\w-]+/g)) {
      if (part[0] === '.') el.classList.add(part.slice(1));
      else el.id = part.slice(1);
    }
  }
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className += (el.className ? ' ' : '') + v;
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) if (c) el.append(c);
  return el;
}

// ---- formatting ---------------------------------------------------------

const nf = new Intl.NumberFormat('en-US');
const nf1 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });
const nf2 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });

export function fmtNum(n) {
  if (n === undefined || n === null || n === '') return '–';
  if (typeof n !== 'number') return String(n);
  return nf.format(n);
}

export function fmtRate(r) {
  if (r === undefined || r === null) return '–';
  if (r === 0) return '0/s';
  if (Math.abs(r) < 10) return nf2.format(r) + '/s';
  if (Math.abs(r) < 1000) return nf1.format(r) + '/s';
  return fmtShort(r) + '/s';
}

export function fmtShort(n) {
  if (n === undefined || n === null) return '–';
  const a = Math.abs(n);
  if (a >= 1e9) return nf1.format(n / 1e9) + 'G';
  if (a >= 1e6) return nf1.format(n / 1e6) + 'M';
  if (a >= 1e4) return nf1.format(n / 1e3) + 'k';
  return a < 10 && n % 1 ? nf2.format(n) : nf.format(Math.round(n));
}

export function fmtBytes(b) {
  if (b === undefined || b === null) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(b) >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return (i ? nf1.format(b) : nf.format(b)) + ' ' + u[i];
}

export function fmtDuration(ms) {
  if (ms === undefined || ms === null) return '–';
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const hr = Math.floor(s / 3600); s -= hr * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return `${d}d ${hr}h`;
  if (hr) return `${hr}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

export function fmtBool(b) {
  return b ? '●' : '○';
}

// Dotted path into an object: get(q, 'message_stats.publish_details.rate')
export function get(obj, path) {
  let v = obj;
  for (const k of path.split('.')) {
    if (v === undefined || v === null) return undefined;
    v = v[k];
  }
  return v;
}

export function vhostLabel(v) {
  return v === '/' ? '/' : v;
}

// ---- feedback -----------------------------------------------------------

let toastBox;
export function toast(message, kind = 'ok', ms = 3500) {
  if (!toastBox) {
    toastBox = h('div.toasts', { role: 'status', 'aria-live': 'polite' });
    document.body.append(toastBox);
  }
  const t = h('div.toast.' + kind, message);
  toastBox.append(t);
  // a burst of actions keeps the newest few, not a column up the screen
  while (toastBox.children.length > 3) toastBox.firstElementChild.remove();
  setTimeout(() => t.classList.add('leaving'), ms);
  setTimeout(() => t.remove(), ms + 400);
}

// A button that asks to be clicked twice: the first click arms it for
// three seconds ("Click again to delete"). No modal, no window.confirm.
export function dangerButton(label, armedLabel, action, cls = 'danger') {
  let armed = 0;
  const b = h('button.btn.' + cls, { type: 'button' }, label);
  b.addEventListener('click', async () => {
    if (!armed) {
      b.textContent = armedLabel;
      b.classList.add('armed');
      armed = setTimeout(() => { armed = 0; b.textContent = label; b.classList.remove('armed'); }, 3000);
      return;
    }
    clearTimeout(armed);
    armed = 0;
    b.textContent = label;
    b.classList.remove('armed');
    b.disabled = true;
    try { await action(); } finally { b.disabled = false; }
  });
  return b;
}

// Runs an API action from a form or button and reports its outcome.
export async function attempt(fn, okMessage) {
  try {
    const r = await fn();
    if (okMessage) toast(typeof okMessage === 'function' ? okMessage(r) : okMessage, 'ok');
    return r ?? true;
  } catch (e) {
    toast(e.message || String(e), 'error', 6000);
    return undefined;
  }
}

export function debounce(fn, ms) {
  let t;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}

// Key/value grid for an object's details.
export function facts(rows) {
  return h('dl.facts', rows.filter(Boolean).map(([k, v]) => [h('dt', k), h('dd', v ?? '–')]));
}

export function pill(text, kind = '') {
  return h('span.pill' + (kind ? '.' + kind : ''), text);
}

export function argsView(args) {
  const keys = Object.keys(args || {});
  if (!keys.length) return h('span.muted', '–');
  return h('span.args', keys.map(k => h('span.arg', h('b', k), ' ', typeof args[k] === 'object' ? JSON.stringify(args[k]) : String(args[k]))));
}
