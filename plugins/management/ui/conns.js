// Connections and channels: who is connected, from where, with what,
// and how fast; an administrator can close a connection.

import { h, clear, fmtNum, fmtRate, fmtBytes, get, facts, pill, dangerButton, attempt } from './dom.js';
import { GET, DELETE, seg } from './api.js';
import { PagedList } from './list.js';

function stateCell(state) {
  if (!state) return '–';
  return pill(state, state === 'running' ? 'good' : state === 'blocked' || state === 'blocking' || state === 'flow' ? 'warn' : '');
}

function clientName(c) {
  const cp = c.client_properties || {};
  return [cp.connection_name, cp.product && (cp.product + (cp.version ? ' ' + cp.version : ''))].filter(Boolean).join(' · ') || '–';
}

function listPath(ctx, what) {
  return ctx.vhost ? `/vhosts/${seg(ctx.vhost)}/${what}` : `/${what}`;
}

export function connectionsView(ctx) {
  const list = new PagedList({
    id: 'connections',
    noun: 'connections',
    empty: 'No clients are connected.',
    path: () => listPath(ctx, 'connections'),
    rowHref: (c) => '#/connections/' + seg(c.name),
    columns: [
      { label: 'Name', sort: 'name', key: 'name', render: (c) => c.name },
      { label: 'Client', render: clientName },
      { label: 'User', sort: 'user', render: (c) => c.user },
      { label: 'Virtual host', sort: 'vhost', render: (c) => c.vhost },
      { label: 'Protocol', sort: 'protocol', render: (c) => h('span.proto', c.protocol || '–') },
      { label: 'TLS', render: (c) => (c.ssl ? pill('TLS', 'good') : h('span.muted', '–')) },
      { label: 'State', sort: 'state', render: (c) => stateCell(c.state) },
      { label: 'Channels', sort: 'channels', num: true, render: (c) => fmtNum(c.channels) },
      { label: 'From client', sort: 'recv_oct_details.rate', num: true, render: (c) => fmtBytes(get(c, 'recv_oct_details.rate')) + '/s' },
      { label: 'To client', sort: 'send_oct_details.rate', num: true, render: (c) => fmtBytes(get(c, 'send_oct_details.rate')) + '/s' },
    ],
  });
  return {
    el: h('div.page', h('div.page-head', h('h1', 'Connections'), ctx.vhost ? h('p.subtitle', 'in ' + ctx.vhost) : null), list.el),
    title: 'Connections',
    refresh: () => list.refresh(),
  };
}

export function connectionView(ctx, name) {
  const info = h('div');
  const channels = h('tbody');
  const actions = h('div.head-actions');
  const el = h('div.page',
    h('div.page-head', h('div', h('p.crumbs', h('a', { href: '#/connections' }, 'Connections')), h('h1.object-name', name)), actions),
    info,
    h('div.card', h('h2', 'Channels'),
      h('div.table-wrap', h('table.grid', h('thead', h('tr', h('th', 'Channel'), h('th', 'State'), h('th.num', 'Consumers'),
        h('th.num', 'Prefetch'), h('th.num', 'Unacked'), h('th', 'Mode'), h('th.num', 'Publish'), h('th.num', 'Deliver'))), channels))));
  let gone = false;

  if (ctx.admin) {
    actions.append(dangerButton('Close connection', 'Click again to close', async () => {
      const ok = await attempt(() => DELETE('/connections/' + seg(name), { 'X-Reason': 'Closed from the management UI' }), 'Connection closed');
      if (ok) ctx.go('#/connections');
    }));
  }

  async function refresh() {
    if (gone) return;
    let c, chs;
    try {
      [c, chs] = await Promise.all([GET('/connections/' + seg(name)), GET('/connections/' + seg(name) + '/channels').catch(() => [])]);
    } catch (e) {
      if (e.status === 404) { gone = true; clear(info, h('div.card.notice', 'This connection has closed. ', h('a', { href: '#/connections' }, 'All connections'))); }
      return;
    }
    const cp = c.client_properties || {};
    clear(info, h('div.columns',
      h('div.card', h('h2', 'Connection'), facts([
        ['User', c.user], ['Virtual host', c.vhost], ['Protocol', c.protocol], ['State', stateCell(c.state)],
        ['Peer', c.peer_host !== undefined ? `${c.peer_host}:${c.peer_port}` : undefined],
        ['Local', c.host !== undefined ? `${c.host}:${c.port}` : undefined],
        ['TLS', c.ssl ? `${c.ssl_protocol || 'yes'} ${c.ssl_cipher || ''}` : 'no'],
        ['Authentication', c.auth_mechanism],
        ['Heartbeat', c.timeout !== undefined ? c.timeout + ' s' : undefined],
        ['Frame max', c.frame_max !== undefined ? fmtNum(c.frame_max) : undefined],
        ['Channel max', c.channel_max !== undefined ? fmtNum(c.channel_max) : undefined],
        ['Connected', c.connected_at ? new Date(c.connected_at).toLocaleString() : undefined],
      ])),
      h('div.card', h('h2', 'Client'), facts([
        ['Name', cp.connection_name], ['Product', cp.product], ['Version', cp.version], ['Platform', cp.platform],
        ['Received', c.recv_oct !== undefined ? `${fmtBytes(c.recv_oct)} (${fmtBytes(get(c, 'recv_oct_details.rate'))}/s)` : undefined],
        ['Sent', c.send_oct !== undefined ? `${fmtBytes(c.send_oct)} (${fmtBytes(get(c, 'send_oct_details.rate'))}/s)` : undefined],
      ]))));
    const list = Array.isArray(chs) ? chs : (chs && chs.items) || [];
    clear(channels, list.length ? list.map(ch => h('tr',
      h('td', String(ch.number ?? ch.name)), h('td', stateCell(ch.state)), h('td.num', fmtNum(ch.consumer_count)),
      h('td.num', fmtNum(ch.prefetch_count)), h('td.num', fmtNum(ch.messages_unacknowledged)),
      h('td', ch.confirm ? pill('confirm') : ch.transactional ? pill('tx') : h('span.muted', '–')),
      h('td.num', fmtRate(get(ch, 'message_stats.publish_details.rate'))),
      h('td.num', fmtRate(get(ch, 'message_stats.deliver_get_details.rate')))))
      : h('tr', h('td.empty', { colSpan: 8 }, 'No channels open.')));
  }

  return { el, title: name, refresh };
}

export function channelsView(ctx) {
  const list = new PagedList({
    id: 'channels',
    noun: 'channels',
    empty: 'No channels are open.',
    path: () => listPath(ctx, 'channels'),
    columns: [
      { label: 'Channel', sort: 'name', key: 'name', render: (c) => c.connection_details && c.connection_details.name
        ? h('a', { href: '#/connections/' + seg(c.connection_details.name) }, c.name) : c.name },
      { label: 'User', sort: 'user', render: (c) => c.user },
      { label: 'Virtual host', sort: 'vhost', render: (c) => c.vhost },
      { label: 'State', sort: 'state', render: (c) => stateCell(c.state) },
      { label: 'Mode', render: (c) => (c.confirm ? pill('confirm') : c.transactional ? pill('tx') : h('span.muted', '–')) },
      { label: 'Consumers', sort: 'consumer_count', num: true, render: (c) => fmtNum(c.consumer_count) },
      { label: 'Prefetch', sort: 'prefetch_count', num: true, render: (c) => fmtNum(c.prefetch_count) },
      { label: 'Unacked', sort: 'messages_unacknowledged', num: true, render: (c) => fmtNum(c.messages_unacknowledged) },
      { label: 'Publish', sort: 'message_stats.publish_details.rate', num: true, render: (c) => fmtRate(get(c, 'message_stats.publish_details.rate')) },
      { label: 'Deliver / get', sort: 'message_stats.deliver_get_details.rate', num: true, render: (c) => fmtRate(get(c, 'message_stats.deliver_get_details.rate')) },
      { label: 'Ack', sort: 'message_stats.ack_details.rate', num: true, render: (c) => fmtRate(get(c, 'message_stats.ack_details.rate')) },
    ],
  });
  return {
    el: h('div.page', h('div.page-head', h('h1', 'Channels'), ctx.vhost ? h('p.subtitle', 'in ' + ctx.vhost) : null), list.el),
    title: 'Channels',
    refresh: () => list.refresh(),
  };
}
