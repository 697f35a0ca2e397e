// A list of broker objects that stays fast with thousands of them: the
// server filters, sorts and pages (?name=&use_regex=&sort=&page=&page_size=
// &pagination=true), the page shows one page at a time, and a refresh
// replaces only the table body. Filter, sort and page survive navigation
// (sessionStorage, per list).

import { h, clear, fmtNum, debounce } from './dom.js';
import { getPage } from './api.js';

export class PagedList {
  // id: storage key; path(): the endpoint; columns: [{label, sort, render,
  // num}]; rowHref(item): link for the row's first cell; columnsParam:
  // the fields to fetch (?columns=), to keep pages small.
  constructor({ id, path, columns, rowHref, noun = 'items', empty = 'Nothing here yet.', defaultSort = 'name', columnsParam = '' }) {
    this.id = id;
    this.path = path;
    this.columns = columns;
    this.rowHref = rowHref;
    this.noun = noun;
    this.empty = empty;
    this.columnsParam = columnsParam;
    this.seq = 0;
    const saved = JSON.parse(sessionStorage.getItem('coney.list.' + id) || 'null');
    this.state = Object.assign({ page: 1, pageSize: 50, name: '', regex: false, sort: defaultSort, reverse: false }, saved || {});

    this.filter = h('input.filter', {
      type: 'search', placeholder: `Filter ${noun} by name  ( / )`, value: this.state.name,
      'aria-label': `Filter ${noun}`, spellcheck: 'false',
    });
    this.filter.addEventListener('input', debounce(() => {
      this.state.name = this.filter.value;
      this.state.page = 1;
      this.refresh();
    }, 200));
    this.regex = h('input', { type: 'checkbox', checked: this.state.regex });
    this.regex.addEventListener('change', () => { this.state.regex = this.regex.checked; this.state.page = 1; this.refresh(); });
    this.count = h('span.count');
    this.pager = h('div.pager');
    this.sizeSel = h('select', { 'aria-label': 'Rows per page' },
      [20, 50, 100, 500].map(n => h('option', { value: n, selected: n === this.state.pageSize }, `${n} / page`)));
    this.sizeSel.addEventListener('change', () => { this.state.pageSize = +this.sizeSel.value; this.state.page = 1; this.refresh(); });

    this.thead = h('thead', h('tr', columns.map(c => this.header(c))));
    this.tbody = h('tbody');
    this.el = h('section.list', { dataset: { list: id } },
      h('div.toolbar',
        h('div.filter-box', this.filter, h('label.regex', { title: 'Treat the filter as a regular expression' }, this.regex, ' regex')),
        this.count, h('div.spacer'), this.sizeSel, this.pager),
      h('div.table-wrap', h('table.grid', this.thead, this.tbody)));
  }

  header(c) {
    if (!c.sort) return h('th' + (c.num ? '.num' : ''), c.label);
    const th = h('th.sortable' + (c.num ? '.num' : ''), { tabindex: 0, title: 'Sort by ' + c.label }, c.label);
    const go = () => {
      if (this.state.sort === c.sort) this.state.reverse = !this.state.reverse;
      else { this.state.sort = c.sort; this.state.reverse = !!c.num; }
      this.state.page = 1;
      this.refresh();
    };
    th.addEventListener('click', go);
    th.addEventListener('keydown', (e) => { if (e.key === 'Enter') go(); });
    th.dataset.sort = c.sort;
    return th;
  }

  save() {
    sessionStorage.setItem('coney.list.' + this.id, JSON.stringify(this.state));
  }

  async refresh() {
    const seq = ++this.seq;
    const s = this.state;
    this.save();
    let r;
    try {
      r = await getPage(this.path(), { page: s.page, pageSize: s.pageSize, name: s.name, regex: s.regex, sort: s.sort, reverse: s.reverse, columns: this.columnsParam });
    } catch (e) {
      if (seq !== this.seq) return;
      // A page past the end after objects went away: go back to the last.
      if (e.status === 400 && s.page > 1) { s.page = 1; return this.refresh(); }
      clear(this.tbody, h('tr', h('td.empty', { colSpan: this.columns.length }, e.message)));
      return;
    }
    if (seq !== this.seq) return;
    if (r.page_count && s.page > r.page_count) { s.page = r.page_count; return this.refresh(); }
    this.render(r);
  }

  render(r) {
    const s = this.state;
    for (const th of this.thead.querySelectorAll('th')) {
      th.classList.toggle('sorted', th.dataset.sort === s.sort);
      th.classList.toggle('desc', th.dataset.sort === s.sort && s.reverse);
    }
    const items = r.items || [];
    const rows = items.map(item => {
      const tr = h('tr', { dataset: { name: item.name ?? '' } });
      this.columns.forEach((c, i) => {
        let v = c.render(item);
        if (i === 0 && this.rowHref) v = h('a', { href: this.rowHref(item) }, v);
        tr.append(h('td' + (c.num ? '.num' : ''), c.key ? { dataset: { col: c.key } } : null, v));
      });
      return tr;
    });
    if (!rows.length) {
      rows.push(h('tr', h('td.empty', { colSpan: this.columns.length },
        s.name ? `No ${this.noun} match “${s.name}”.` : this.empty)));
    }
    this.tbody.replaceChildren(...rows);

    const first = items.length ? (r.page - 1) * (r.page_size || s.pageSize) + 1 : 0;
    const last = first ? first + items.length - 1 : 0;
    const of = (n) => `${fmtNum(n)} ${n === 1 ? this.noun.replace(/s$/, '') : this.noun}`;
    const range = first ? `${fmtNum(first)}–${fmtNum(last)} of ` : '';
    this.count.textContent = s.name
      ? `${range}${fmtNum(r.filtered_count)} matching (${of(r.total_count)})`
      : `${range}${of(r.total_count)}`;

    const pc = r.page_count || 1;
    // someone typing a page number keeps their input across a refresh
    if (this.pager.contains(document.activeElement) && document.activeElement.tagName === 'INPUT') return;
    const btn = (label, page, title) => h('button.btn.ghost.small', {
      type: 'button', disabled: page < 1 || page > pc || page === r.page, title,
      onclick: () => { s.page = page; this.refresh(); },
    }, label);
    const pageInput = h('input.page-input', { type: 'number', min: 1, max: pc, value: r.page, 'aria-label': 'Page' });
    pageInput.addEventListener('change', () => {
      const p = Math.max(1, Math.min(pc, parseInt(pageInput.value, 10) || 1));
      s.page = p;
      this.refresh();
    });
    clear(this.pager,
      btn('«', 1, 'First page'), btn('‹', r.page - 1, 'Previous page'),
      h('span.page-of', 'Page ', pageInput, ` of ${fmtNum(pc)}`),
      btn('›', r.page + 1, 'Next page'), btn('»', pc, 'Last page'));
  }
}
