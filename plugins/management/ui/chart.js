// Line charts on <canvas>: a time axis, a y axis with round ticks, one
// line per series with a soft fill under the first, a legend that shows
// each series' latest value, and a crosshair with the values under the
// pointer. Samples come from the page's own polling (see app.js), so a
// chart shows the minutes since the page was opened.

import { h } from './dom.js';

function niceStep(max, ticks) {
  const raw = max / ticks;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const n = raw / mag;
  return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 2.5 ? 2.5 : n <= 5 ? 5 : 10) * mag;
}

function cssVar(el, name, fallback) {
  const v = getComputedStyle(el).getPropertyValue(name).trim();
  return v || fallback;
}

export class LineChart {
  // series: [{key, label, color}]; format: value -> text; window: ms shown
  constructor({ series, format = String, windowMs = 10 * 60 * 1000, height = 180, title = '' }) {
    this.series = series;
    this.format = format;
    this.windowMs = windowMs;
    this.samples = [];
    this.hover = null;
    this.canvas = h('canvas', { height, role: 'img', 'aria-label': title || 'chart' });
    this.tip = h('div.chart-tip');
    this.legend = h('div.legend');
    this.el = h('div.chart', title ? h('div.chart-title', title) : null,
      h('div.chart-area', { style: { height: height + 'px' } }, this.canvas, this.tip), this.legend);
    this.height = height;
    this.canvas.addEventListener('mousemove', (e) => {
      const r = this.canvas.getBoundingClientRect();
      this.hover = e.clientX - r.left;
      this.draw();
    });
    this.canvas.addEventListener('mouseleave', () => { this.hover = null; this.draw(); });
    this.ro = new ResizeObserver(() => this.draw());
    this.ro.observe(this.el);
    this.legendItems = series.map(s => {
      const val = h('span.legend-value', '–');
      const item = h('span.legend-item', h('i', { style: { background: s.color } }), s.label, val);
      this.legend.append(item);
      return val;
    });
  }

  // samples: [{t: ms, v: {key: number}}], oldest first
  update(samples) {
    this.samples = samples;
    const last = samples[samples.length - 1];
    this.series.forEach((s, i) => {
      this.legendItems[i].textContent = last && last.v[s.key] !== undefined ? this.format(last.v[s.key]) : '–';
    });
    this.draw();
  }

  setWindow(ms) { this.windowMs = ms; this.draw(); }

  destroy() { this.ro.disconnect(); }

  draw() {
    const c = this.canvas;
    const w = c.parentElement ? c.parentElement.clientWidth : 0;
    if (!w) return;
    const dpr = window.devicePixelRatio || 1;
    const H = this.height;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(H * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(H * dpr);
      c.style.width = w + 'px';
      c.style.height = H + 'px';
    }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, H);

    const ink = cssVar(c, '--muted', '#6b7280');
    const grid = cssVar(c, '--grid', '#e5e7eb');
    const font = '11px ' + cssVar(document.body, '--font', 'system-ui, sans-serif');
    const now = this.samples.length ? this.samples[this.samples.length - 1].t : Date.now();
    // the window grows with the data up to windowMs, so a fresh page's
    // first samples fill the chart instead of a sliver at its right edge
    const span = this.samples.length ? now - this.samples[0].t : 0;
    const win = Math.min(this.windowMs, Math.max(60000, span * 1.04));
    const t0 = now - win;
    const pts = this.samples.filter(s => s.t >= t0);

    let max = 0;
    for (const s of pts) for (const se of this.series) max = Math.max(max, s.v[se.key] || 0);
    if (max <= 0) max = 1;
    const step = niceStep(max, 4);
    const top = Math.ceil(max / step) * step;

    g.font = font;
    const labelW = Math.max(...[0, 1, 2, 3, 4].map(i => g.measureText(this.format(Math.min(top, i * step))).width)) + 10;
    const L = Math.ceil(labelW), R = 8, T = 8, B = 20;
    const pw = w - L - R, ph = H - T - B;
    const x = (t) => L + ((t - t0) / win) * pw;
    const y = (v) => T + ph - (v / top) * ph;

    // grid and y labels
    g.strokeStyle = grid;
    g.fillStyle = ink;
    g.lineWidth = 1;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    for (let v = 0; v <= top + step / 2; v += step) {
      const yy = Math.round(y(v)) + 0.5;
      g.beginPath(); g.moveTo(L, yy); g.lineTo(w - R, yy); g.stroke();
      g.fillText(this.format(v), L - 6, yy);
    }
    // time labels about 80 px apart, on round times
    g.textAlign = 'center';
    g.textBaseline = 'top';
    const every = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600].map(x => x * 1000)
      .find(st => win / st <= pw / 80) || 3600000;
    const two = (n) => String(n).padStart(2, '0');
    for (let t = Math.ceil(t0 / every) * every; t <= now; t += every) {
      const xx = x(t);
      if (xx < L + 20 || xx > w - R - 20) continue;
      const d = new Date(t);
      g.fillText(two(d.getHours()) + ':' + two(d.getMinutes()) + (every < 60000 ? ':' + two(d.getSeconds()) : ''), xx, T + ph + 5);
    }

    if (pts.length < 2) {
      g.textAlign = 'center';
      g.textBaseline = 'middle';
      g.fillText(pts.length ? 'Collecting samples…' : 'No data yet', L + pw / 2, T + ph / 2);
      this.tip.style.display = 'none';
      return;
    }

    // the first series with a soft fill, then the lines, the first on top
    const path = (se) => {
      g.beginPath();
      pts.forEach((s, j) => {
        const xx = x(s.t), yy = y(s.v[se.key] || 0);
        if (j === 0) g.moveTo(xx, yy); else g.lineTo(xx, yy);
      });
    };
    const first = this.series[0];
    path(first);
    g.lineTo(x(pts[pts.length - 1].t), y(0));
    g.lineTo(x(pts[0].t), y(0));
    g.closePath();
    const grad = g.createLinearGradient(0, T, 0, T + ph);
    grad.addColorStop(0, first.color + '40');
    grad.addColorStop(1, first.color + '00');
    g.fillStyle = grad;
    g.fill();
    for (const se of [...this.series].reverse()) {
      path(se);
      g.strokeStyle = se.color;
      g.lineWidth = 2;
      g.lineJoin = 'round';
      g.stroke();
    }

    // crosshair and values under the pointer
    if (this.hover !== null && this.hover >= L && this.hover <= w - R) {
      let best = pts[0];
      for (const s of pts) if (Math.abs(x(s.t) - this.hover) < Math.abs(x(best.t) - this.hover)) best = s;
      const xx = Math.round(x(best.t)) + 0.5;
      g.strokeStyle = ink;
      g.setLineDash([3, 3]);
      g.beginPath(); g.moveTo(xx, T); g.lineTo(xx, T + ph); g.stroke();
      g.setLineDash([]);
      for (const se of this.series) {
        g.beginPath();
        g.arc(xx, y(best.v[se.key] || 0), 3.5, 0, Math.PI * 2);
        g.fillStyle = se.color;
        g.fill();
      }
      const d = new Date(best.t);
      this.tip.replaceChildren(h('div.tip-time', d.toLocaleTimeString()),
        ...this.series.map(se => h('div', h('i', { style: { background: se.color } }), se.label + ' ', h('b', this.format(best.v[se.key] || 0)))));
      this.tip.style.display = 'block';
      const tw = this.tip.offsetWidth;
      this.tip.style.left = (xx + 12 + tw > w ? xx - 12 - tw : xx + 12) + 'px';
    } else {
      this.tip.style.display = 'none';
    }
  }
}
