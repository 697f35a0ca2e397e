// Exchanges: the list with an "add exchange" form, and one exchange's
// page with its bindings (both ways), a bind form and a publish form. The
// bindings card and the publish form serve the queue page too.

import { h, clear, fmtRate, get, facts, pill, dangerButton, attempt, argsView, toast } from './dom.js';
import { GET, PUT, POST, DELETE, seg, exchangeSeg } from './api.js';
import { PagedList } from './list.js';
import { field, input, select, KeyValueEditor, vhostSelect, panel, formOf } from './forms.js';
import { live } from './app.js';

export const exLabel = (name) => (name === '' ? '(AMQP default)' : name);
export const exHref = (vhost, name) => `#/exchanges/${seg(vhost)}/${seg(name)}`;
export const qHref = (vhost, name) => `#/queues/${seg(vhost)}/${seg(name)}`;

export function features(o) {
  const out = [];
  if (o.durable) out.push(pill('D', 'feat', ), ' ');
  if (o.auto_delete) out.push(pill('AD', 'feat'), ' ');
  if (o.internal) out.push(pill('I', 'feat'), ' ');
  if (o.exclusive) out.push(pill('Excl', 'feat'), ' ');
  for (const k of Object.keys(o.arguments || {})) out.push(h('span.pill.arg-pill', { title: `${k} = ${JSON.stringify(o.arguments[k])}` }, k.replace(/^x-/, '')), ' ');
  return out.length ? h('span.features', out) : h('span.muted', '–');
}

function exchangeTypes() {
  const ov = live.overview;
  const types = ov && Array.isArray(ov.exchange_types) ? ov.exchange_types.map(t => t.name) : [];
  return types.length ? types : ['direct', 'fanout', 'topic', 'headers'];
}

export function exchangesView(ctx) {
  const list = new PagedList({
    id: 'exchanges',
    noun: 'exchanges',
    path: () => (ctx.vhost ? '/exchanges/' + seg(ctx.vhost) : '/exchanges'),
    rowHref: (x) => exHref(x.vhost, x.name),
    columns: [
      { label: 'Name', sort: 'name', key: 'name', render: (x) => exLabel(x.name) },
      ...(ctx.vhost ? [] : [{ label: 'Virtual host', sort: 'vhost', render: (x) => x.vhost }]),
      { label: 'Type', sort: 'type', render: (x) => h('span.type', x.type) },
      { label: 'Features', render: features },
      { label: 'Rate in', sort: 'message_stats.publish_in_details.rate', num: true, render: (x) => fmtRate(get(x, 'message_stats.publish_in_details.rate')) },
      { label: 'Rate out', sort: 'message_stats.publish_out_details.rate', num: true, render: (x) => fmtRate(get(x, 'message_stats.publish_out_details.rate')) },
    ],
  });

  const vh = vhostSelect('vhost', ctx.vhost || '/');
  const name = input('name', { required: true, placeholder: 'e.g. orders' });
  const type = select('type', exchangeTypes(), 'direct');
  const durable = select('durable', [['true', 'Durable'], ['false', 'Transient']], 'true');
  const autoDelete = select('auto_delete', [['false', 'No'], ['true', 'Yes']], 'false');
  const internal = select('internal', [['false', 'No'], ['true', 'Yes']], 'false');
  const args = new KeyValueEditor({ shortcuts: [['alternate-exchange', 'string', 'Where unroutable messages go']] });
  const form = formOf([
    field('Virtual host', vh), field('Name', name), field('Type', type), field('Durability', durable),
    field('Auto delete', autoDelete, 'Deleted when its last binding goes'), field('Internal', internal, 'Only other exchanges may publish to it'),
    field('Arguments', args.el),
  ], async () => {
    let a;
    try { a = args.value(); } catch (e) { toast(e.message, 'error'); return; }
    const ok = await attempt(() => PUT(`/exchanges/${seg(vh.value)}/${seg(name.value)}`, {
      type: type.value, durable: durable.value === 'true', auto_delete: autoDelete.value === 'true',
      internal: internal.value === 'true', arguments: a,
    }), `Exchange ${name.value} declared`);
    if (ok) { name.value = ''; args.reset(); list.refresh(); }
  }, 'Add exchange');
  form.id = 'add-exchange';

  return {
    el: h('div.page', h('div.page-head', h('h1', 'Exchanges'), ctx.vhost ? h('p.subtitle', 'in ' + ctx.vhost) : null),
      list.el, panel('Add an exchange', form, { open: false })),
    title: 'Exchanges',
    refresh: () => list.refresh(),
  };
}

export function exchangeView(ctx, vhost, name) {
  const info = h('div.card');
  const actions = h('div.head-actions');
  const bindingsFrom = new BindingsCard({ vhost, exchange: name, direction: 'source' });
  const bindingsTo = name === '' ? null : new BindingsCard({ vhost, exchange: name, direction: 'destination' });
  const el = h('div.page',
    h('div.page-head',
      h('div', h('p.crumbs', h('a', { href: '#/exchanges' }, 'Exchanges'), ' in virtual host ', h('code', vhost)),
        h('h1.object-name', exLabel(name))), actions),
    info, bindingsFrom.el, bindingsTo ? bindingsTo.el : null,
    panel('Publish a message', publishForm({ vhost, exchange: name, routingKey: '' }), { open: false, id: 'publish' }));
  let gone = false;
  if (name !== '' && !name.startsWith('amq.')) {
    actions.append(dangerButton('Delete exchange', 'Click again to delete', async () => {
      const ok = await attempt(() => DELETE(`/exchanges/${seg(vhost)}/${exchangeSeg(name)}`), `Exchange ${name} deleted`);
      if (ok) ctx.go('#/exchanges');
    }));
  }

  async function refresh() {
    if (gone) return;
    let x;
    try { x = await GET(`/exchanges/${seg(vhost)}/${exchangeSeg(name)}`); } catch (e) {
      if (e.status === 404) { gone = true; clear(info, h('p', 'This exchange does not exist (any more). ', h('a', { href: '#/exchanges' }, 'All exchanges'))); }
      return;
    }
    clear(info, h('h2', 'Details'), facts([
      ['Virtual host', x.vhost], ['Type', h('span.type', x.type)],
      ['Durable', x.durable ? 'yes' : 'no'], ['Auto delete', x.auto_delete ? 'yes' : 'no'], ['Internal', x.internal ? 'yes' : 'no'],
      ['Arguments', argsView(x.arguments)],
      ['Publish in', fmtRate(get(x, 'message_stats.publish_in_details.rate'))],
      ['Publish out', fmtRate(get(x, 'message_stats.publish_out_details.rate'))],
      x.policy ? ['Policy', x.policy] : null,
    ]));
    await Promise.all([bindingsFrom.refresh(), bindingsTo && bindingsTo.refresh()]);
  }
  return { el, title: exLabel(name), refresh };
}

// ---- bindings ---------------------------------------------------------------

// The bindings of one exchange (as source or destination) or one queue,
// with a form to add one and an unbind button per row.
export class BindingsCard {
  constructor({ vhost, exchange, queue, direction }) {
    this.vhost = vhost;
    this.exchange = exchange;
    this.queue = queue;
    this.direction = direction;   // 'source' | 'destination' | 'queue'
    this.tbody = h('tbody');
    const title = direction === 'source' ? 'Bindings from this exchange'
      : direction === 'destination' ? 'Bindings to this exchange' : 'Bindings';
    const other = direction === 'source' ? 'To' : 'From';
    this.form = this.buildForm();
    this.el = h('div.card', { dataset: { bindings: direction } }, h('h2', title),
      h('div.table-wrap', h('table.grid', h('thead', h('tr', h('th', other), h('th', 'Routing key'), h('th', 'Arguments'), h('th'))), this.tbody)),
      this.form ? h('details.inline-form', h('summary', direction === 'source' ? 'Add a binding from this exchange' : direction === 'destination' ? 'Add a binding to this exchange' : 'Bind this queue to an exchange'), this.form) : null);
  }

  path() {
    const v = seg(this.vhost);
    if (this.direction === 'queue') return `/queues/${v}/${seg(this.queue)}/bindings`;
    return `/exchanges/${v}/${exchangeSeg(this.exchange)}/bindings/${this.direction}`;
  }

  buildForm() {
    if (this.direction === 'source' && this.exchange === '') return null;   // the default exchange binds implicitly
    const destType = select('destination_type', [['q', 'Queue'], ['e', 'Exchange']], 'q');
    const other = input('other', { required: true, placeholder: this.direction === 'source' ? 'queue or exchange name' : 'exchange name' });
    const key = input('routing_key', { placeholder: 'routing key' });
    const args = new KeyValueEditor({ shortcuts: [['x-match', 'string', 'headers exchanges: all or any']] });
    const fields = [];
    if (this.direction === 'source') fields.push(field('To', h('div.inline', destType, other)));
    else fields.push(field('From exchange', other));
    fields.push(field('Routing key', key), field('Arguments', args.el));
    return formOf(fields, async () => {
      let a;
      try { a = args.value(); } catch (e) { toast(e.message, 'error'); return; }
      const v = seg(this.vhost);
      let path;
      if (this.direction === 'source') path = `/bindings/${v}/e/${exchangeSeg(this.exchange)}/${destType.value}/${seg(other.value)}`;
      else if (this.direction === 'destination') path = `/bindings/${v}/e/${exchangeSeg(other.value)}/e/${seg(this.exchange)}`;
      else path = `/bindings/${v}/e/${exchangeSeg(other.value)}/q/${seg(this.queue)}`;
      const ok = await attempt(() => POST(path, { routing_key: key.value, arguments: a }), 'Binding added');
      if (ok) { other.value = ''; key.value = ''; args.reset(); this.refresh(); }
    }, 'Bind');
  }

  async refresh() {
    let list;
    try { list = await GET(this.path()); } catch { return; }
    list = Array.isArray(list) ? list : [];
    const rows = list.map(b => {
      const showSource = this.direction !== 'source';
      const otherName = showSource ? b.source : b.destination;
      const otherType = showSource ? 'exchange' : b.destination_type;
      const link = otherType === 'queue' ? h('a', { href: qHref(b.vhost || this.vhost, otherName) }, otherName)
        : h('a', { href: exHref(b.vhost || this.vhost, otherName) }, exLabel(otherName));
      // bindings of the default exchange are implicit and cannot be removed
      const removable = b.source !== '';
      const unbind = removable ? dangerButton('Unbind', 'Confirm', async () => {
        const d = b.destination_type === 'exchange' ? 'e' : 'q';
        const ok = await attempt(() => DELETE(`/bindings/${seg(this.vhost)}/e/${exchangeSeg(b.source)}/${d}/${seg(b.destination)}/${seg(b.properties_key ?? '~')}`), 'Binding removed');
        if (ok) this.refresh();
      }, 'danger.small') : h('span.muted', 'implicit');
      return h('tr', h('td', otherType === 'exchange' && !showSource ? pill('exchange', 'feat') : null, ' ', link),
        h('td', b.routing_key === '' ? h('span.muted', '(empty)') : h('code', b.routing_key)), h('td', argsView(b.arguments)), h('td.actions', unbind));
    });
    clear(this.tbody, rows.length ? rows : h('tr', h('td.empty', { colSpan: 4 }, 'No bindings.')));
  }
}

// ---- publish ----------------------------------------------------------------

// POST /api/exchanges/{vhost}/{exchange}/publish. With fixedKey the routing
// key is given (a queue's page publishes through the default exchange).
export function publishForm({ vhost, exchange, routingKey = '', fixedKey = false }) {
  const key = input('routing_key', { value: routingKey, placeholder: 'routing key', readOnly: fixedKey });
  const mode = select('delivery_mode', [['1', '1 – non-persistent'], ['2', '2 – persistent']], '2');
  const headers = new KeyValueEditor({ name: 'headers' });
  const props = new KeyValueEditor({
    name: 'properties',
    shortcuts: [['content_type', 'string'], ['correlation_id', 'string'], ['reply_to', 'string'], ['expiration', 'string'],
      ['message_id', 'string'], ['priority', 'number'], ['type', 'string'], ['app_id', 'string']],
  });
  const payload = h('textarea', { name: 'payload', rows: 5, spellcheck: 'false', placeholder: 'Message body' });
  const encoding = select('payload_encoding', [['string', 'Text'], ['base64', 'Base64']], 'string');
  const form = formOf([
    field('Routing key', key, fixedKey ? 'Through the default exchange, straight to this queue' : null),
    field('Delivery mode', mode),
    field('Headers', headers.el),
    field('Properties', props.el),
    field('Payload', payload),
    field('Encoding', encoding),
  ], async () => {
    let hd, pr;
    try { hd = headers.value(); pr = props.value(); } catch (e) { toast(e.message, 'error'); return; }
    const properties = { ...pr, delivery_mode: +mode.value };
    if (Object.keys(hd).length) properties.headers = hd;
    const r = await attempt(() => POST(`/exchanges/${seg(vhost)}/${exchangeSeg(exchange)}/publish`, {
      properties, routing_key: key.value, payload: payload.value, payload_encoding: encoding.value,
    }));
    if (r === undefined) return;
    if (r && r.routed === false) toast('Message published, but no queue was bound to take it', 'warn', 5000);
    else toast('Message published', 'ok');
  }, 'Publish message');
  form.classList.add('publish-form');
  return form;
}
