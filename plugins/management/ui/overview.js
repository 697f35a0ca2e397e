// The overview: totals, two live charts (queued messages, message rates),
// the node's resources and alarms, and the listeners.

import { h, clear, fmtNum, fmtRate, fmtBytes, fmtDuration, fmtShort, pill } from './dom.js';
import { LineChart } from './chart.js';
import { live } from './app.js';

const COLORS = {
  teal: '#0d9488', amber: '#d97706', indigo: '#6366f1', rose: '#e11d48', sky: '#0284c7', lime: '#65a30d', slate: '#64748b',
};

function card(label, value, href, sub) {
  return h(href ? 'a.stat' : 'div.stat', href ? { href } : null,
    h('span.stat-label', label), h('span.stat-value', value), sub ? h('span.stat-sub', sub) : null);
}

function meter(label, used, limit, fmt, alarm) {
  const pct = limit ? Math.min(100, (used / limit) * 100) : 0;
  return h('div.meter' + (alarm ? '.alarmed' : ''),
    h('div.meter-head', h('span', label), h('span.muted', limit ? `${fmt(used)} of ${fmt(limit)}` : fmt(used))),
    h('div.meter-bar', h('div.meter-fill', { style: { width: pct.toFixed(1) + '%' } })));
}

export function overviewView(ctx) {
  const totals = h('div.stats');
  const queued = new LineChart({
    title: 'Queued messages',
    series: [
      { key: 'messages', label: 'Total', color: COLORS.teal },
      { key: 'ready', label: 'Ready', color: COLORS.amber },
      { key: 'unacked', label: 'Unacked', color: COLORS.indigo },
    ],
    format: fmtShort,
  });
  const rates = new LineChart({
    title: 'Message rates',
    series: [
      { key: 'publish', label: 'Publish', color: COLORS.teal },
      { key: 'deliver', label: 'Deliver / get', color: COLORS.indigo },
      { key: 'ack', label: 'Ack', color: COLORS.lime },
      { key: 'confirm', label: 'Confirm', color: COLORS.sky },
      { key: 'redeliver', label: 'Redeliver', color: COLORS.amber },
      { key: 'unroutable', label: 'Unroutable', color: COLORS.rose },
    ],
    format: (v) => fmtRate(v).replace('/s', '') + '/s',
  });
  const node = h('div.node');
  const listeners = h('tbody');
  const heading = h('p.subtitle');
  const WINDOWS = [[60000, '1 min'], [600000, '10 min'], [1800000, '30 min']];
  let win = +(localStorage.getItem('coney.window') || 600000);
  const windowButtons = h('div.segmented', { role: 'group', 'aria-label': 'Chart window' }, WINDOWS.map(([ms, label]) => {
    const b = h('button', { type: 'button', 'aria-pressed': String(ms === win), dataset: { ms } }, label);
    b.addEventListener('click', () => {
      win = ms;
      localStorage.setItem('coney.window', String(ms));
      for (const x of windowButtons.children) x.setAttribute('aria-pressed', String(+x.dataset.ms === ms));
      queued.setWindow(ms);
      rates.setWindow(ms);
    });
    return b;
  }));
  queued.windowMs = win;
  rates.windowMs = win;
  const el = h('div.page.overview',
    h('div.page-head', h('div', h('h1', 'Overview'), heading), h('div.head-actions', h('span.muted', 'Charts: last'), windowButtons)),
    totals,
    h('div.charts', h('div.card', queued.el), h('div.card', rates.el)),
    h('div.columns',
      h('div.card', h('h2', 'Node'), node),
      h('div.card', h('h2', 'Listeners'),
        h('table.grid.compact', h('thead', h('tr', h('th', 'Protocol'), h('th', 'Interface'), h('th.num', 'Port'))), listeners))));

  function render() {
    const ov = live.overview;
    queued.update(live.samples);
    rates.update(live.samples);
    if (!ov) return;
    heading.textContent = `${ov.product_name || 'Coney'} ${ov.product_version || ''} on ${ov.node || 'this node'}` +
      (ov.cluster_name ? ` · cluster ${ov.cluster_name}` : '');
    const ot = ov.object_totals || {}, qt = ov.queue_totals || {}, ms = ov.message_stats || {};
    const rate = (k) => (ms[k + '_details'] ? ms[k + '_details'].rate : 0);
    clear(totals,
      card('Connections', fmtNum(ot.connections), '#/connections'),
      card('Channels', fmtNum(ot.channels), '#/channels'),
      card('Exchanges', fmtNum(ot.exchanges), '#/exchanges'),
      card('Queues', fmtNum(ot.queues), '#/queues'),
      card('Consumers', fmtNum(ot.consumers)),
      card('Messages', fmtNum(qt.messages), null, `${fmtNum(qt.messages_ready)} ready · ${fmtNum(qt.messages_unacknowledged)} unacked`),
      card('Publish', fmtRate(rate('publish')), null, `deliver ${fmtRate(rate('deliver_get'))}`));

    const n = Array.isArray(live.nodes) ? live.nodes[0] : null;
    if (n) {
      clear(node,
        h('div.node-name', h('b', n.name || ov.node), n.running === false ? pill('stopped', 'bad') : pill('running', 'good'),
          n.mem_alarm ? pill('memory alarm', 'bad') : null, n.disk_free_alarm ? pill('disk alarm', 'bad') : null),
        meter('Memory', n.mem_used || 0, n.mem_limit, fmtBytes, n.mem_alarm),
        n.disk_free !== undefined ? h('div.meter' + (n.disk_free_alarm ? '.alarmed' : ''),
          h('div.meter-head', h('span', 'Disk free'), h('span.muted', `${fmtBytes(n.disk_free)} free, alarm below ${fmtBytes(n.disk_free_limit)}`))) : null,
        n.fd_total ? meter('File descriptors', n.fd_used || 0, n.fd_total, fmtNum) : null,
        n.sockets_total ? meter('Sockets', n.sockets_used || 0, n.sockets_total, fmtNum) : null,
        h('dl.facts',
          h('dt', 'Uptime'), h('dd', fmtDuration(n.uptime)),
          n.processors ? [h('dt', 'Processors'), h('dd', fmtNum(n.processors))] : null,
          n.run_queue !== undefined ? [h('dt', 'Run queue'), h('dd', fmtNum(n.run_queue))] : null));
    } else {
      clear(node, h('p.muted', ctx.monitor ? 'Node details are not available.' : 'Node details need the monitoring or administrator tag.'));
    }

    const ls = ov.listeners || [];
    clear(listeners, ls.length ? ls.map(l => h('tr',
      h('td', h('span.proto', l.protocol)), h('td', h('code', l.ip_address || '*')), h('td.num', String(l.port))))
      : h('tr', h('td.empty', { colSpan: 3 }, 'No listeners reported.')));
  }

  live.listeners.add(render);
  render();
  return {
    el,
    title: 'Overview',
    destroy() { live.listeners.delete(render); queued.destroy(); rates.destroy(); },
  };
}
