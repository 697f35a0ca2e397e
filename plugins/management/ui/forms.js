// Form building blocks: labelled fields, a key/value/type editor for
// arguments and headers, and the vhost picker.

import { h, clear } from './dom.js';
import { GET } from './api.js';

export function field(label, input, hint) {
  const id = input.id || ('f-' + Math.random().toString(36).slice(2, 9));
  if (!input.id && input.tagName) input.id = id;
  return h('div.field', h('label', { for: input.id || id }, label), h('div.control', input, hint ? h('small.hint', hint) : null));
}

export function input(name, attrs = {}) {
  return h('input', { name, type: 'text', autocomplete: 'off', spellcheck: 'false', ...attrs });
}

export function select(name, options, value) {
  return h('select', { name }, options.map(o => {
    const [v, label] = Array.isArray(o) ? o : [o, o];
    return h('option', { value: v, selected: v === value }, label);
  }));
}

export function checkbox(name, checked, label) {
  const c = h('input', { type: 'checkbox', name, checked });
  return h('label.check', c, ' ', label);
}

// Keys and values with a type each, for arguments and headers. shortcuts:
// [[key, type, hint]] shown as one-click additions.
export class KeyValueEditor {
  constructor({ shortcuts = [], name = 'arguments' } = {}) {
    this.rows = h('div.kv-rows');
    this.el = h('div.kv', { dataset: { kv: name } }, this.rows);
    if (shortcuts.length) {
      this.el.append(h('div.kv-shortcuts', h('span.muted', 'Add: '),
        shortcuts.map(([k, t, hint]) => h('button.link', { type: 'button', title: hint || '', onclick: () => this.add(k, '', t, true) }, k))));
    }
    this.add();
  }

  add(key = '', value = '', type = 'string', focusValue = false) {
    // reuse a trailing empty row for a shortcut
    const last = this.rows.lastElementChild;
    if (key && last && !last.querySelector('.kv-key').value && !last.querySelector('.kv-val').value) last.remove();
    const k = h('input.kv-key', { placeholder: 'key', value: key, spellcheck: 'false', 'aria-label': 'key' });
    const v = h('input.kv-val', { placeholder: 'value', value, spellcheck: 'false', 'aria-label': 'value' });
    const t = h('select.kv-type', { 'aria-label': 'type' }, ['string', 'number', 'boolean', 'list'].map(x => h('option', { value: x, selected: x === type }, x)));
    const row = h('div.kv-row', k, h('span.eq', '='), v, t,
      h('button.btn.ghost.small.kv-del', { type: 'button', title: 'Remove', onclick: () => { row.remove(); if (!this.rows.children.length) this.add(); } }, '×'));
    // a new empty row appears once the last one is used
    const grow = () => { if (row === this.rows.lastElementChild && (k.value || v.value)) this.add(); };
    k.addEventListener('input', grow);
    v.addEventListener('input', grow);
    this.rows.append(row);
    if (focusValue) v.focus();
    return row;
  }

  // Throws an Error naming the first bad value.
  value() {
    const out = {};
    for (const row of this.rows.children) {
      const key = row.querySelector('.kv-key').value.trim();
      const raw = row.querySelector('.kv-val').value;
      const type = row.querySelector('.kv-type').value;
      if (!key) continue;
      if (type === 'number') {
        const n = Number(raw);
        if (raw.trim() === '' || Number.isNaN(n)) throw new Error(`${key}: “${raw}” is not a number`);
        out[key] = n;
      } else if (type === 'boolean') {
        if (!/^(true|false)$/i.test(raw.trim())) throw new Error(`${key}: write true or false`);
        out[key] = raw.trim().toLowerCase() === 'true';
      } else if (type === 'list') {
        try { out[key] = JSON.parse(raw); if (!Array.isArray(out[key])) throw 0; } catch { throw new Error(`${key}: write a JSON list, e.g. ["a", 1]`); }
      } else {
        out[key] = raw;
      }
    }
    return out;
  }

  reset() { clear(this.rows); this.add(); }
}

// A <select> of the vhosts the user can see, filled asynchronously.
export function vhostSelect(name = 'vhost', preferred = '/') {
  const s = h('select', { name }, h('option', { value: preferred }, preferred));
  GET('/vhosts?columns=name').then(list => {
    const names = (list || []).map(v => v.name).sort();
    if (!names.length) return;
    const keep = names.includes(s.value) ? s.value : names.includes(preferred) ? preferred : names[0];
    clear(s, names.map(n => h('option', { value: n, selected: n === keep }, n)));
  }).catch(() => {});
  return s;
}

// Card wrapping a form with a title; collapsed by default if asked.
export function panel(title, body, { open = true, id } = {}) {
  const d = h('details.panel', { open, id });
  d.append(h('summary', title), h('div.panel-body', body));
  return d;
}

export function formOf(elements, onSubmit, submitLabel) {
  const button = h('button.btn.primary', { type: 'submit' }, submitLabel);
  const f = h('form.form', elements, h('div.actions', button));
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    button.disabled = true;
    try { await onSubmit(f); } finally { button.disabled = false; }
  });
  return f;
}
