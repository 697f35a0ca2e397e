// Administration: users with their tags and permissions, virtual hosts,
// and definitions export/import.

import { h, clear, fmtNum, facts, pill, dangerButton, attempt, toast } from './dom.js';
import { GET, PUT, POST, DELETE, seg, tagsOf } from './api.js';
import { PagedList } from './list.js';
import { field, input, vhostSelect, panel, formOf } from './forms.js';

const TAGS = ['administrator', 'monitoring', 'policymaker', 'management'];

function subnav(active) {
  return h('nav.subnav', [['users', 'Users', '#/admin/users'], ['vhosts', 'Virtual hosts', '#/admin/vhosts'], ['definitions', 'Definitions', '#/admin/definitions']]
    .map(([k, label, href]) => h('a' + (k === active ? '.active' : ''), { href }, label)));
}

function tagPills(user) {
  const tags = tagsOf(user);
  return tags.length ? h('span.features', tags.map(t => [pill(t, t === 'administrator' ? 'accent' : ''), ' '])) : h('span.muted', 'no tags (no UI access)');
}

// Text input for tags plus one-click buttons for the known ones.
function tagsInput(value = '') {
  const inp = input('tags', { value, placeholder: 'comma-separated' });
  const toggle = (t) => {
    const set = new Set(inp.value.split(',').map(s => s.trim()).filter(Boolean));
    if (set.has(t)) set.delete(t); else set.add(t);
    inp.value = [...set].join(', ');
  };
  return h('div', inp, h('div.kv-shortcuts', TAGS.map(t => h('button.link', { type: 'button', onclick: () => toggle(t) }, t))));
}

const tagValue = (wrap) => wrap.querySelector('input').value.split(',').map(s => s.trim()).filter(Boolean).join(',');

export function usersView(ctx) {
  const list = new PagedList({
    id: 'users',
    noun: 'users',
    path: () => '/users',
    rowHref: (u) => '#/admin/users/' + seg(u.name),
    columns: [
      { label: 'Name', sort: 'name', key: 'name', render: (u) => u.name },
      { label: 'Tags', render: tagPills },
      { label: 'Password', render: (u) => (u.password_hash ? h('span.muted', u.hashing_algorithm ? u.hashing_algorithm.replace(/^rabbit_password_hashing_/, '') : 'set') : h('span.muted', 'none')) },
    ],
  });
  const name = input('name', { required: true, autocomplete: 'off' });
  const pass = h('input', { name: 'password', type: 'password', autocomplete: 'new-password' });
  const tags = tagsInput('');
  const form = formOf([field('Username', name), field('Password', pass, 'Leave empty for a user that cannot log in with a password'), field('Tags', tags)], async () => {
    const body = { tags: tagValue(tags) };
    if (pass.value) body.password = pass.value; else body.password_hash = '';
    const ok = await attempt(() => PUT('/users/' + seg(name.value), body), `User ${name.value} saved`);
    if (ok) { name.value = ''; pass.value = ''; tags.querySelector('input').value = ''; list.refresh(); }
  }, 'Add user');
  form.id = 'add-user';
  return {
    el: h('div.page', h('div.page-head', h('h1', 'Admin')), subnav('users'), list.el, panel('Add a user', form, { open: false })),
    title: 'Users',
    refresh: () => list.refresh(),
  };
}

export function userView(ctx, name) {
  const info = h('div.card');
  const perms = h('tbody');
  const topic = h('tbody');
  const actions = h('div.head-actions');
  if (!ctx.user || ctx.user.name !== name) {
    actions.append(dangerButton('Delete user', 'Click again to delete', async () => {
      const ok = await attempt(() => DELETE('/users/' + seg(name)), `User ${name} deleted`);
      if (ok) ctx.go('#/admin/users');
    }));
  }

  const vh = vhostSelect('vhost', ctx.vhost || '/');
  const conf = input('configure', { value: '.*' });
  const write = input('write', { value: '.*' });
  const read = input('read', { value: '.*' });
  const permForm = formOf([field('Virtual host', vh), field('Configure', conf, 'regular expression of names'), field('Write', write), field('Read', read)], async () => {
    const ok = await attempt(() => PUT(`/permissions/${seg(vh.value)}/${seg(name)}`, { configure: conf.value, write: write.value, read: read.value }),
      `Permissions in ${vh.value} set`);
    if (ok) refresh();
  }, 'Set permissions');

  const tvh = vhostSelect('vhost', ctx.vhost || '/');
  const tex = input('exchange', { value: 'amq.topic' });
  const twrite = input('write', { value: '.*' });
  const tread = input('read', { value: '.*' });
  const topicForm = formOf([field('Virtual host', tvh), field('Exchange', tex), field('Write', twrite, 'regular expression of routing keys'), field('Read', tread)], async () => {
    const ok = await attempt(() => PUT(`/topic-permissions/${seg(tvh.value)}/${seg(name)}`, { exchange: tex.value, write: twrite.value, read: tread.value }),
      'Topic permissions set');
    if (ok) refresh();
  }, 'Set topic permissions');

  const pass = h('input', { name: 'password', type: 'password', autocomplete: 'new-password', placeholder: 'unchanged' });
  const tags = tagsInput('');
  let tagsFilled = false;
  const editForm = formOf([field('New password', pass), field('Tags', tags)], async () => {
    const body = { tags: tagValue(tags) };
    if (pass.value) body.password = pass.value;
    else if (current && current.password_hash !== undefined) { body.password_hash = current.password_hash; if (current.hashing_algorithm) body.hashing_algorithm = current.hashing_algorithm; }
    const ok = await attempt(() => PUT('/users/' + seg(name), body), `User ${name} updated`);
    if (ok) { pass.value = ''; refresh(); }
  }, 'Update user');

  const el = h('div.page',
    h('div.page-head', h('div', h('p.crumbs', h('a', { href: '#/admin/users' }, 'Users')), h('h1.object-name', name)), actions),
    info,
    h('div.card', h('h2', 'Permissions'), h('div.table-wrap', h('table.grid',
      h('thead', h('tr', h('th', 'Virtual host'), h('th', 'Configure'), h('th', 'Write'), h('th', 'Read'), h('th'))), perms)),
    h('details.inline-form', h('summary', 'Set permissions'), permForm)),
    h('div.card', h('h2', 'Topic permissions'), h('div.table-wrap', h('table.grid',
      h('thead', h('tr', h('th', 'Virtual host'), h('th', 'Exchange'), h('th', 'Write'), h('th', 'Read'), h('th'))), topic)),
    h('details.inline-form', h('summary', 'Set topic permissions'), topicForm)),
    panel('Update this user', editForm, { open: false }));

  let current = null;
  let gone = false;
  async function refresh() {
    if (gone) return;
    try { current = await GET('/users/' + seg(name)); } catch (e) {
      if (e.status === 404) { gone = true; clear(info, h('p', 'No such user. ', h('a', { href: '#/admin/users' }, 'All users'))); }
      return;
    }
    if (!tagsFilled) { tags.querySelector('input').value = tagsOf(current).join(', '); tagsFilled = true; }
    clear(info, h('h2', 'User'), facts([['Tags', tagPills(current)],
      ['Password', current.password_hash ? 'set' : 'none'],
      current.hashing_algorithm ? ['Hashing', current.hashing_algorithm] : null]));
    const [p, tp] = await Promise.all([GET(`/users/${seg(name)}/permissions`).catch(() => []), GET(`/users/${seg(name)}/topic-permissions`).catch(() => [])]);
    clear(perms, (p || []).length ? p.map(x => h('tr', h('td', x.vhost), h('td', h('code', x.configure)), h('td', h('code', x.write)), h('td', h('code', x.read)),
      h('td.actions', dangerButton('Clear', 'Confirm', async () => {
        if (await attempt(() => DELETE(`/permissions/${seg(x.vhost)}/${seg(name)}`), 'Permissions cleared')) refresh();
      }, 'danger.small')))) : h('tr', h('td.empty', { colSpan: 5 }, 'No permissions: this user can reach no virtual host.')));
    clear(topic, (tp || []).length ? tp.map(x => h('tr', h('td', x.vhost), h('td', x.exchange), h('td', h('code', x.write)), h('td', h('code', x.read)),
      h('td.actions', dangerButton('Clear', 'Confirm', async () => {
        if (await attempt(() => DELETE(`/topic-permissions/${seg(x.vhost)}/${seg(name)}`), 'Topic permissions cleared')) refresh();
      }, 'danger.small')))) : h('tr', h('td.empty', { colSpan: 5 }, 'No topic permissions (topic exchanges are unrestricted).')));
  }
  return { el, title: name, refresh };
}

export function vhostsView(ctx) {
  const list = new PagedList({
    id: 'vhosts',
    noun: 'virtual hosts',
    path: () => '/vhosts',
    columns: [
      { label: 'Name', sort: 'name', key: 'name', render: (v) => h('b', v.name) },
      { label: 'Description', render: (v) => v.description || h('span.muted', '–') },
      { label: 'Tags', render: (v) => (tagsOf(v).length ? tagsOf(v).map(t => [pill(t), ' ']) : h('span.muted', '–')) },
      { label: 'Ready', sort: 'messages_ready', num: true, render: (v) => fmtNum(v.messages_ready) },
      { label: 'Unacked', sort: 'messages_unacknowledged', num: true, render: (v) => fmtNum(v.messages_unacknowledged) },
      { label: 'Total', sort: 'messages', num: true, render: (v) => fmtNum(v.messages) },
      { label: '', render: (v) => (v.name === '/' ? null : dangerButton('Delete', 'Delete everything in it?', async () => {
        if (await attempt(() => DELETE('/vhosts/' + seg(v.name)), `Virtual host ${v.name} deleted`)) list.refresh();
      }, 'danger.small')) },
    ],
  });
  const name = input('name', { required: true });
  const desc = input('description');
  const tags = input('tags', { placeholder: 'comma-separated' });
  const form = formOf([field('Name', name), field('Description', desc), field('Tags', tags)], async () => {
    const ok = await attempt(() => PUT('/vhosts/' + seg(name.value), { description: desc.value, tags: tags.value }), `Virtual host ${name.value} added`);
    if (ok) { name.value = ''; desc.value = ''; tags.value = ''; list.refresh(); }
  }, 'Add virtual host');
  form.id = 'add-vhost';
  return {
    el: h('div.page', h('div.page-head', h('h1', 'Admin')), subnav('vhosts'), list.el, panel('Add a virtual host', form, { open: false })),
    title: 'Virtual hosts',
    refresh: () => list.refresh(),
  };
}

function summary(defs) {
  const n = (k) => (Array.isArray(defs[k]) ? defs[k].length : 0);
  return ['users', 'vhosts', 'permissions', 'topic_permissions', 'policies', 'parameters', 'queues', 'exchanges', 'bindings']
    .filter(k => n(k)).map(k => `${fmtNum(n(k))} ${k.replace('_', ' ')}`).join(', ') || 'nothing';
}

export function definitionsView(ctx) {
  const scope = h('select', { name: 'scope' }, h('option', { value: '' }, 'Whole broker'));
  GET('/vhosts?columns=name').then(vs => (vs || []).forEach(v => scope.append(h('option', { value: v.name }, 'Virtual host ' + v.name)))).catch(() => {});
  const exportBtn = h('button.btn.primary', { type: 'button' }, 'Download definitions');
  exportBtn.addEventListener('click', async () => {
    const defs = await attempt(() => GET(scope.value ? '/definitions/' + seg(scope.value) : '/definitions'));
    if (!defs || defs === true) return;
    const blob = new Blob([JSON.stringify(defs, null, 2) + '\n'], { type: 'application/json' });
    const a = h('a', { href: URL.createObjectURL(blob), download: `coney-definitions${scope.value ? '-' + scope.value.replace(/[^\w.-]/g, '_') : ''}-${new Date().toISOString().slice(0, 10)}.json` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
    toast(`Exported ${summary(defs)}`);
  });

  const file = h('input', { type: 'file', accept: '.json,application/json', name: 'file' });
  const into = h('select', { name: 'into' }, h('option', { value: '' }, 'Whole broker'));
  GET('/vhosts?columns=name').then(vs => (vs || []).forEach(v => into.append(h('option', { value: v.name }, 'Virtual host ' + v.name)))).catch(() => {});
  const preview = h('p.muted', 'Choose a file exported from Coney or RabbitMQ.');
  let parsed = null;
  file.addEventListener('change', async () => {
    parsed = null;
    const f = file.files[0];
    if (!f) return;
    try {
      parsed = JSON.parse(await f.text());
      preview.textContent = `${f.name}: ${summary(parsed)}.`;
    } catch {
      preview.textContent = `${f.name} is not JSON.`;
    }
  });
  const importForm = formOf([field('File', file), field('Into', into), preview], async () => {
    if (!parsed) { toast('Choose a definitions file first', 'error'); return; }
    await attempt(() => POST(into.value ? '/definitions/' + seg(into.value) : '/definitions', parsed), `Imported ${summary(parsed)}`);
  }, 'Import definitions');

  return {
    el: h('div.page', h('div.page-head', h('h1', 'Admin')), subnav('definitions'),
      h('div.columns',
        h('div.card', h('h2', 'Export'), h('p.muted', 'Users, virtual hosts, permissions, exchanges, queues and bindings as JSON. Messages are not included.'),
          h('div.form', field('Scope', scope), h('div.actions', exportBtn))),
        h('div.card', h('h2', 'Import'), h('p.muted', 'Merges into what exists: objects are created or updated, never deleted.'), importForm))),
    title: 'Definitions',
  };
}

