// 민원함: open complaints (GET /inbox), overdue first; critical ones not yet acknowledged are
// pinned under a banner until someone acknowledges them (the status change to acknowledged).
// Polls every 20 s; new complaints are announced politely.

import { ApiError } from './api.js';
import { h, clear, announce, serverNow, overdueFirst, statusBadge, urgencyBadge, slaOf, slaTag, timeTag, select, field, showError, busy } from './ui.js';
import { CHANNEL, KIND, STATE, URGENCY, label } from './labels.js';

const POLL_MS = 20000;
const PAGES = 3; // up to 300 complaints on one screen
const filters = { state: 'open', department: '', urgency: '', channel: '', from: '', to: '' };

function pinned(item) {
  return item.urgency === 'critical' && item.status === 'received';
}

async function fetchAll(ctx) {
  const query = {
    state: filters.state,
    department: filters.department,
    urgency: filters.urgency,
    channel: filters.channel,
    from: filters.from,
    to: filters.to ? `${filters.to}T23:59:59Z` : '',
    limit: 100,
  };
  const items = [];
  let cursor = null;
  for (let page = 0; page < PAGES; page += 1) {
    const answer = await ctx.api('inbox', { query: { ...query, cursor } });
    items.push(...answer.items);
    cursor = answer.next_cursor;
    if (!cursor) break;
  }
  return { items, more: Boolean(cursor) };
}

export const screen = {
  id: 'inbox',
  title: '민원함',
  nav: true,
  match: (path) => (path === 'inbox' ? {} : null),
  render(main, _params, ctx) {
    const { staff, config } = ctx;
    const scoped = staff.role === 'department_staff' || staff.role === 'reception';
    let known = null; // ids seen at the last load
    let latest = [];
    let more = false;
    let fresh = new Set();
    const status = h('p', { class: 'list-status', id: 'list-status' });
    const banner = h('section', { class: 'critical-banner', id: 'critical', 'aria-labelledby': 'critical-title', hidden: true });
    const list = h('ol', { class: 'inbox-list', id: 'inbox-list', 'aria-labelledby': 'screen-title' });

    const departments = [['', '전체 부서'], ...config.departments.map((d) => [d.id, d.name])];
    const form = h('form', { class: 'filters', id: 'filters', role: 'search', 'aria-label': '민원 찾기' },
      field('상태', select('state', Object.entries(STATE), filters.state)),
      scoped
        ? h('div', { class: 'field' }, h('span', { class: 'field-label' }, '부서'),
          h('p', { class: 'fixed-value' }, ctx.departmentName(staff.department)))
        : field('부서', select('department', departments, filters.department)),
      field('긴급도', select('urgency', [['', '전체'], ...Object.entries(URGENCY).map(([k, v]) => [k, v.text])], filters.urgency)),
      field('접수 경로', select('channel', [['', '전체'], ...config.channels.map((c) => [c, label(CHANNEL, c)])], filters.channel)),
      field('접수일(부터)', h('input', { type: 'date', name: 'from', value: filters.from })),
      field('접수일(까지)', h('input', { type: 'date', name: 'to', value: filters.to })),
      h('div', { class: 'filter-actions' }, h('button', { type: 'submit', class: 'primary' }, '조회')));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      for (const name of Object.keys(filters)) {
        const control = form.elements.namedItem(name);
        if (control) filters[name] = control.value;
      }
      known = null;
      load(false);
    });
    form.addEventListener('change', (event) => {
      if (event.target.tagName === 'SELECT') form.requestSubmit();
    });

    const refresh = h('button', { type: 'button', class: 'secondary', id: 'refresh' }, '새로 고침');
    refresh.addEventListener('click', () => load(true));
    clear(main,
      h('div', { class: 'screen-head' }, h('h1', { id: 'screen-title', tabindex: '-1' }, '민원함'), status,
        h('span', { class: 'hint' }, '20초마다 자동으로 새로 고칩니다'), refresh),
      form, banner, list);

    function acknowledgeButton(item) {
      if (!staff.changes) return null;
      const button = h('button', { type: 'button', class: 'primary ack', dataset: { id: item.id } }, '확인했습니다');
      button.addEventListener('click', async () => {
        button.disabled = true;
        try {
          await ctx.api(`complaints/${item.id}/status`, { method: 'POST', body: { status: 'acknowledged', note: '민원함에서 확인' } });
          announce(`${item.code} 긴급 민원을 확인했습니다.`);
          await load(true);
          const next = banner.querySelector('button.ack') || list.querySelector('a');
          if (next) next.focus();
        } catch (error) {
          button.disabled = false;
          const note = h('p', { class: 'form-error', role: 'alert' }, error instanceof ApiError ? error.text() : String(error));
          button.after(note);
        }
      });
      return button;
    }

    function row(item, now) {
      const sla = slaOf(item, now);
      return h('li', { class: `inbox-item${sla.overdue ? ' overdue' : ''}${item.urgency === 'critical' ? ' critical' : ''}`, dataset: { id: item.id, code: item.code } },
        h('div', { class: 'item-main' },
          h('a', { href: `#/complaints/${item.id}`, class: 'item-link' },
            h('span', { class: 'code' }, item.code), ' ',
            h('span', { class: 'excerpt' }, item.excerpt || '(내용 없음)')),
          fresh.has(item.id) ? h('span', { class: 'badge new' }, h('span', { class: 'icon', 'aria-hidden': 'true' }, '✚'), ' 새 민원') : null),
        h('div', { class: 'item-meta' },
          urgencyBadge(item.urgency), statusBadge(item.status),
          h('span', { class: 'meta' }, `${label(KIND, item.kind)} · ${config.categories[item.category] || item.category || '분류 전'}`),
          h('span', { class: 'meta' }, ctx.departmentName(item.department)),
          h('span', { class: 'meta' }, label(CHANNEL, item.channel)),
          h('span', { class: 'meta' }, '접수 ', timeTag(item.created_at))),
        h('div', { class: 'item-sla' }, slaTag(item, now)));
    }

    function draw() {
      const now = serverNow();
      const shown = latest;
      const critical = overdueFirst(shown.filter(pinned), now);
      const rest = overdueFirst(shown.filter((item) => !pinned(item)), now);
      banner.hidden = critical.length === 0;
      clear(banner, critical.length ? [
        h('h2', { id: 'critical-title' }, h('span', { class: 'icon', 'aria-hidden': 'true' }, '⚠ '),
          `긴급 민원 ${critical.length}건: 확인해 주세요`),
        h('p', {}, '확인할 때까지 맨 위에 고정됩니다. 확인하면 접수 상태가 “확인함”으로 바뀝니다.'),
        h('ul', { class: 'critical-list' }, critical.map((item) => h('li', { dataset: { id: item.id } },
          h('div', { class: 'critical-text' },
            h('a', { href: `#/complaints/${item.id}` }, h('strong', {}, item.code), ' ', item.excerpt || ''),
            h('div', { class: 'item-meta' }, ctx.departmentName(item.department), ' · ', slaTag(item, now))),
          acknowledgeButton(item)))),
      ] : []);
      clear(list, rest.map((item) => row(item, now)));
      const overdue = shown.filter((item) => slaOf(item, now).overdue).length;
      status.textContent = `${shown.length}건${overdue ? ` · 기한 초과 ${overdue}건` : ''}${more ? ' · 더 있음: 조건을 좁혀 주세요' : ''}`;
      if (!shown.length) list.append(h('li', { class: 'empty' }, '조건에 맞는 민원이 없습니다.'));
    }

    let stopped = false;
    async function load(quiet) {
      try {
        const answer = await fetchAll(ctx);
        if (stopped) return;
        const ids = new Set(answer.items.map((item) => item.id));
        if (known) {
          const added = answer.items.filter((item) => !known.has(item.id));
          fresh = new Set([...fresh, ...added.map((item) => item.id)].filter((id) => ids.has(id)));
          if (added.length) {
            const urgent = added.filter((item) => item.urgency === 'critical').length;
            announce(`새 민원 ${added.length}건${urgent ? `, 그중 긴급 ${urgent}건` : ''}이 들어왔습니다.`);
          }
        }
        known = ids;
        latest = answer.items;
        more = answer.more;
        draw();
      } catch (error) {
        if (stopped) return;
        if (!quiet) showError(form, error instanceof ApiError ? error : new ApiError(0, {}));
      }
    }

    load(false);
    const poll = window.setInterval(() => load(true), POLL_MS);
    const tick = window.setInterval(draw, 30000);
    busy(form, false);
    return () => {
      stopped = true;
      window.clearInterval(poll);
      window.clearInterval(tick);
    };
  },
};
