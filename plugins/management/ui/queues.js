// Queues: the paged, filterable list with a declare form, and one queue's
// page: counts (live, with a chart of the minutes the page has been open),
// consumers, bindings, publish, get messages, purge and delete.

import { h, clear, fmtNum, fmtRate, fmtBytes, get, facts, pill, dangerButton, attempt, argsView, toast, fmtShort } from './dom.js';
import { GET, PUT, POST, DELETE, seg } from './api.js';
import { PagedList } from './list.js';
import { field, input, select, KeyValueEditor, vhostSelect, panel, formOf } from './forms.js';
import { LineChart } from './chart.js';
import { BindingsCard, publishForm, features, qHref } from './exchanges.js';

const QUEUE_ARGS = [
  ['x-message-ttl', 'number', 'How long a message may wait, in ms'],
  ['x-expires', 'number', 'Delete the queue after this long unused, in ms'],
  ['x-max-length', 'number', 'Most messages kept'],
  ['x-max-length-bytes', 'number', 'Most bytes of bodies kept'],
  ['x-overflow', 'string', 'drop-head, reject-publish or reject-publish-dlx'],
  ['x-dead-letter-exchange', 'string', 'Where expired and rejected messages go'],
  ['x-dead-letter-routing-key', 'string', 'Their routing key there'],
  ['x-max-priority', 'number', 'Highest priority (1–255)'],
  ['x-single-active-consumer', 'boolean', 'One consumer at a time'],
];

const LIST_COLUMNS = 'name,vhost,type,durable,auto_delete,exclusive,arguments,state,consumers,messages,messages_ready,messages_unacknowledged,' +
  'message_stats.publish_details,message_stats.deliver_get_details,message_stats.ack_details';

function stateCell(q) {
  const s = q.state || 'running';
  return pill(s, s === 'running' ? 'good' : s === 'idle' ? '' : 'warn');
}

export function queuesView(ctx) {
  const list = new PagedList({
    id: 'queues',
    noun: 'queues',
    empty: 'No queues yet. Declare one below.',
    path: () => (ctx.vhost ? '/queues/' + seg(ctx.vhost) : '/queues'),
    rowHref: (q) => qHref(q.vhost, q.name),
    columnsParam: LIST_COLUMNS,
    columns: [
      { label: 'Name', sort: 'name', key: 'name', render: (q) => q.name },
      ...(ctx.vhost ? [] : [{ label: 'Virtual host', sort: 'vhost', render: (q) => q.vhost }]),
      { label: 'Type', sort: 'type', render: (q) => h('span.type', q.type || 'classic') },
      { label: 'Features', render: features },
      { label: 'State', sort: 'state', render: stateCell },
      { label: 'Ready', sort: 'messages_ready', key: 'messages_ready', num: true, render: (q) => fmtNum(q.messages_ready) },
      { label: 'Unacked', sort: 'messages_unacknowledged', key: 'messages_unacknowledged', num: true, render: (q) => fmtNum(q.messages_unacknowledged) },
      { label: 'Total', sort: 'messages', key: 'messages', num: true, render: (q) => fmtNum(q.messages) },
      { label: 'Consumers', sort: 'consumers', num: true, render: (q) => fmtNum(q.consumers) },
      { label: 'Incoming', sort: 'message_stats.publish_details.rate', num: true, render: (q) => fmtRate(get(q, 'message_stats.publish_details.rate')) },
      { label: 'Deliver / get', sort: 'message_stats.deliver_get_details.rate', num: true, render: (q) => fmtRate(get(q, 'message_stats.deliver_get_details.rate')) },
      { label: 'Ack', sort: 'message_stats.ack_details.rate', num: true, render: (q) => fmtRate(get(q, 'message_stats.ack_details.rate')) },
    ],
  });

  const vh = vhostSelect('vhost', ctx.vhost || '/');
  const name = input('name', { required: true, placeholder: 'e.g. orders.created' });
  const type = select('type', [['classic', 'Classic']], 'classic');
  const durable = select('durable', [['true', 'Durable'], ['false', 'Transient']], 'true');
  const autoDelete = select('auto_delete', [['false', 'No'], ['true', 'Yes']], 'false');
  const args = new KeyValueEditor({ shortcuts: QUEUE_ARGS });
  const form = formOf([
    field('Virtual host', vh), field('Name', name), field('Type', type), field('Durability', durable),
    field('Auto delete', autoDelete, 'Deleted when its last consumer goes'),
    field('Arguments', args.el),
  ], async () => {
    let a;
    try { a = args.value(); } catch (e) { toast(e.message, 'error'); return; }
    if (type.value !== 'classic') a['x-queue-type'] = type.value;
    const n = name.value;
    const ok = await attempt(() => PUT(`/queues/${seg(vh.value)}/${seg(n)}`, {
      durable: durable.value === 'true', auto_delete: autoDelete.value === 'true', arguments: a,
    }), `Queue ${n} declared`);
    if (ok) { name.value = ''; args.reset(); list.refresh(); }
  }, 'Declare queue');
  form.id = 'declare-queue';

  return {
    el: h('div.page', h('div.page-head', h('h1', 'Queues'), ctx.vhost ? h('p.subtitle', 'in ' + ctx.vhost) : null),
      list.el, panel('Declare a queue', form, { open: true, id: 'declare-panel' })),
    title: 'Queues',
    refresh: () => list.refresh(),
  };
}

export function queueView(ctx, vhost, name) {
  const path = `/queues/${seg(vhost)}/${seg(name)}`;
  const stats = h('div.stats.queue-stats');
  const details = h('div.card');
  const consumers = h('tbody');
  const samples = [];
  const chart = new LineChart({
    title: 'Messages (since this page opened)',
    series: [
      { key: 'ready', label: 'Ready', color: '#d97706' },
      { key: 'unacked', label: 'Unacked', color: '#6366f1' },
      { key: 'total', label: 'Total', color: '#0d9488' },
    ],
    format: fmtShort,
    windowMs: 5 * 60 * 1000,
    height: 150,
  });
  const bindings = new BindingsCard({ vhost, queue: name, direction: 'queue' });
  const getResults = h('div.messages', { id: 'get-results' });
  const actions = h('div.head-actions',
    dangerButton('Purge', 'Click again to purge', async () => {
      await attempt(() => DELETE(path + '/contents'), `Queue ${name} purged`);
      refresh();
    }, 'warn'),
    dangerButton('Delete queue', 'Click again to delete', async () => {
      const ok = await attempt(() => DELETE(path), `Queue ${name} deleted`);
      if (ok) ctx.go('#/queues');
    }));

  const el = h('div.page.queue-page', { dataset: { queue: name } },
    h('div.page-head',
      h('div', h('p.crumbs', h('a', { href: '#/queues' }, 'Queues'), ' in virtual host ', h('code', vhost)), h('h1.object-name', name)), actions),
    stats,
    h('div.columns', h('div.card', chart.el), details),
    h('div.card', h('h2', 'Consumers'), h('div.table-wrap', h('table.grid',
      h('thead', h('tr', h('th', 'Tag'), h('th', 'Channel'), h('th', 'Ack'), h('th', 'Exclusive'), h('th.num', 'Prefetch'), h('th', 'Active'))), consumers))),
    bindings.el,
    h('div.columns.forms',
      panel('Publish a message', publishForm({ vhost, exchange: '', routingKey: name, fixedKey: true }), { open: true, id: 'publish' }),
      panel('Get messages', h('div', getForm(), getResults), { open: true, id: 'get' })));

  let gone = false;

  function getForm() {
    const ack = select('ackmode', [
      ['ack_requeue_true', 'Nack, requeue (leave in the queue)'],
      ['ack_requeue_false', 'Ack (remove from the queue)'],
      ['reject_requeue_true', 'Reject, requeue'],
      ['reject_requeue_false', 'Reject, do not requeue'],
    ], 'ack_requeue_true');
    const enc = select('encoding', [['auto', 'Automatic: text, or base64 if not UTF-8'], ['base64', 'Base64']], 'auto');
    const count = input('count', { type: 'number', min: 1, value: 1 });
    const truncate = input('truncate', { type: 'number', min: 1, value: 50000 });
    const f = formOf([field('Ack mode', ack), field('Encoding', enc), field('Messages', count), field('Truncate at', truncate, 'bytes')], async () => {
      const r = await attempt(() => POST(path + '/get', {
        count: +count.value || 1, ackmode: ack.value, encoding: enc.value, truncate: +truncate.value || 50000,
      }));
      if (r === undefined) return;
      showMessages(Array.isArray(r) ? r : []);
      refresh();
    }, 'Get messages');
    f.id = 'get-form';
    return f;
  }

  function showMessages(msgs) {
    if (!msgs.length) { clear(getResults, h('p.empty-note', 'The queue is empty.')); return; }
    clear(getResults, msgs.map((m, i) => {
      const props = { ...(m.properties || {}) };
      const headers = props.headers;
      delete props.headers;
      return h('article.message', { dataset: { index: i } },
        h('header', h('b', `Message ${i + 1}`), m.redelivered ? pill('redelivered', 'warn') : null,
          h('span.muted', ` ${fmtNum(m.message_count)} left in the queue`)),
        facts([
          ['Exchange', m.exchange === '' ? '(AMQP default)' : m.exchange],
          ['Routing key', h('code', m.routing_key)],
          ['Properties', argsView(props)],
          headers && Object.keys(headers).length ? ['Headers', argsView(headers)] : null,
          ['Payload', `${fmtBytes(m.payload_bytes)}, ${m.payload_encoding}`],
        ]),
        h('pre.payload', m.payload));
    }));
  }

  async function refresh() {
    if (gone) return;
    let q;
    try { q = await GET(path); } catch (e) {
      if (e.status === 404) {
        gone = true;
        clear(stats, h('div.card.notice', 'This queue does not exist (any more). ', h('a', { href: '#/queues' }, 'All queues')));
      }
      return;
    }
    samples.push({ t: Date.now(), v: { ready: q.messages_ready || 0, unacked: q.messages_unacknowledged || 0, total: q.messages || 0 } });
    if (samples.length > 400) samples.shift();
    chart.update(samples);
    const rate = (k) => fmtRate(get(q, `message_stats.${k}_details.rate`));
    clear(stats,
      h('div.stat', h('span.stat-label', 'Total'), h('span.stat-value', { dataset: { stat: 'messages' } }, fmtNum(q.messages)), q.message_bytes !== undefined ? h('span.stat-sub', fmtBytes(q.message_bytes)) : null),
      h('div.stat', h('span.stat-label', 'Ready'), h('span.stat-value', { dataset: { stat: 'messages_ready' } }, fmtNum(q.messages_ready))),
      h('div.stat', h('span.stat-label', 'Unacked'), h('span.stat-value', { dataset: { stat: 'messages_unacknowledged' } }, fmtNum(q.messages_unacknowledged))),
      h('div.stat', h('span.stat-label', 'Consumers'), h('span.stat-value', fmtNum(q.consumers))),
      h('div.stat', h('span.stat-label', 'Incoming'), h('span.stat-value', rate('publish')), h('span.stat-sub', `deliver ${rate('deliver_get')} · ack ${rate('ack')}`)));
    clear(details, h('h2', 'Details'), facts([
      ['Virtual host', q.vhost], ['Type', q.type || 'classic'], ['State', stateCell(q)],
      ['Features', features(q)], ['Arguments', argsView(q.arguments)],
      q.policy ? ['Policy', q.policy] : null,
      q.exclusive_consumer_tag ? ['Exclusive consumer', q.exclusive_consumer_tag] : null,
      q.memory !== undefined ? ['Memory', fmtBytes(q.memory)] : null,
      q.message_bytes_persistent !== undefined ? ['Persistent bytes', fmtBytes(q.message_bytes_persistent)] : null,
      q.idle_since ? ['Idle since', String(q.idle_since)] : null,
    ]));
    // consumer_details when the queue carries them, else /api/consumers
    let cs = q.consumer_details;
    if (!cs && q.consumers) {
      const all = await GET('/consumers/' + seg(vhost)).catch(() => []);
      cs = (Array.isArray(all) ? all : []).filter(c => c.queue && c.queue.name === name);
    }
    cs = cs || [];
    clear(consumers, cs.length ? cs.map(c => h('tr',
      h('td', h('code', c.consumer_tag)),
      h('td', c.channel_details ? (c.channel_details.connection_name
        ? h('a', { href: '#/connections/' + seg(c.channel_details.connection_name) }, c.channel_details.name || c.channel_details.connection_name)
        : c.channel_details.name) : '–'),
      h('td', c.ack_required ? 'manual' : 'auto'), h('td', c.exclusive ? 'yes' : 'no'),
      h('td.num', fmtNum(c.prefetch_count)), h('td', c.active === false ? pill('waiting', 'warn') : pill('active', 'good'))))
      : h('tr', h('td.empty', { colSpan: 6 }, q.consumers ? `${fmtNum(q.consumers)} consumers (details not available)` : 'No consumers.')));
    await bindings.refresh();
  }

  return { el, title: name, refresh, destroy: () => chart.destroy() };
}
