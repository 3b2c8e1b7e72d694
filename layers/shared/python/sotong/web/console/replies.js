// 답변 대기: patients' replies to recall messages waiting for an answer (GET /replies), replies
// that speak of harm after a procedure (bleeding, swelling, fever: the complaint classifier's
// critical or high) pinned under a banner, then oldest first. Beside the chosen reply: the tag's
// consultation manual, the conversation, the patient's recent touchpoints, the answer form and
// "handled" / "converted". Polls every 20 s without touching what staff are typing.

import { ApiError } from './api.js';
import { h, clear, announce, serverNow, timeTag, urgencyBadge, field, showError, clearErrors, busy } from './ui.js';
import { thread, touchpointLine } from './recall.js';

const POLL_MS = 20000;

const keyOf = (item) => `${item.patient.id}/${item.message.id}`;

function waitedFor(iso) {
  const minutes = Math.max(0, Math.round((serverNow() - new Date(iso).getTime()) / 60000));
  if (minutes < 60) return `${minutes}분째 대기`;
  if (minutes < 1440) return `${Math.floor(minutes / 60)}시간째 대기`;
  return `${Math.floor(minutes / 1440)}일째 대기`;
}

function flagText(item) {
  return item.urgency === 'critical' ? '시술 후 위험 신호' : '시술 후 이상 호소';
}

export const screen = {
  id: 'replies',
  title: '답변 대기',
  nav: true,
  roles: ['cs_admin', 'department_staff'],
  match: (path) => (path === 'replies' ? {} : null),
  render(main, _params, ctx) {
    const { staff } = ctx;
    let items = [];
    let known = null;
    let selected = null; // the key of the reply shown on the right
    let shownWaiting = ''; // that patient's waiting replies when their conversation was read
    let stopped = false;

    const status = h('p', { class: 'list-status', id: 'list-status' });
    const banner = h('section', { class: 'critical-banner', id: 'flagged', 'aria-labelledby': 'flagged-title', hidden: true });
    const list = h('ol', { class: 'reply-list', id: 'reply-list', 'aria-label': '답변을 기다리는 답장' });
    const detail = h('section', { class: 'reply-detail', id: 'reply-detail', 'aria-label': '고른 답장', tabindex: '-1' });
    const problem = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const refresh = h('button', { type: 'button', class: 'secondary', id: 'refresh' }, '새로 고침');
    refresh.addEventListener('click', () => load(false));

    clear(main,
      h('div', { class: 'screen-head' }, h('h1', { id: 'screen-title', tabindex: '-1' }, '답변 대기'), status,
        h('span', { class: 'hint' }, staff.role === 'cs_admin' ? '모든 부서 · 20초마다 자동으로 새로 고칩니다' : `${ctx.departmentName(staff.department)} · 20초마다 자동으로 새로 고칩니다`),
        refresh),
      problem, banner,
      h('div', { class: 'replies-layout' },
        h('div', { class: 'reply-column' }, h('h2', { class: 'visually-hidden' }, '대기 목록'), list,
          h('p', { class: 'hint' }, '↑·↓ 키로 답장 사이를 옮기고 Enter로 엽니다.')),
        detail));

    // keyboard: ↑/↓ move between the replies of the banner and the list, Enter opens one
    main.addEventListener('keydown', (event) => {
      const current = event.target.closest && event.target.closest('button.reply-pick');
      if (!current || (event.key !== 'ArrowDown' && event.key !== 'ArrowUp')) return;
      const all = [...main.querySelectorAll('button.reply-pick')];
      const next = all[all.indexOf(current) + (event.key === 'ArrowDown' ? 1 : -1)];
      if (next) { event.preventDefault(); next.focus(); }
    });

    function choose(key, focus = true) {
      selected = key;
      markSelected();
      const item = items.find((i) => keyOf(i) === key);
      drawDetail(item);
      if (focus) {
        const title = detail.querySelector('#reply-title');
        if (title) title.focus();
      }
    }

    function markSelected() {
      for (const button of main.querySelectorAll('button.reply-pick')) {
        button.setAttribute('aria-pressed', button.dataset.key === selected ? 'true' : 'false');
      }
    }

    function pick(item) {
      const key = keyOf(item);
      return h('button', { type: 'button', class: 'reply-pick', dataset: { key }, 'aria-pressed': key === selected ? 'true' : 'false', onclick: () => choose(key) },
        h('span', { class: 'reply-who' }, item.patient.name, item.patient.chart_no ? h('span', { class: 'hint' }, ` · ${item.patient.chart_no}`) : null),
        h('span', { class: 'reply-excerpt' }, item.message.text),
        h('span', { class: 'item-meta' },
          item.flagged ? h('span', { class: `badge urgency-${item.urgency}` }, h('span', { class: 'icon', 'aria-hidden': 'true' }, '⚠'), ` ${flagText(item)}`) : null,
          item.manual ? h('span', { class: 'meta' }, item.manual.name) : null,
          staff.role === 'cs_admin' && item.department ? h('span', { class: 'meta' }, ctx.departmentName(item.department)) : null,
          h('span', { class: 'meta' }, timeTag(item.message.at), ` · ${waitedFor(item.message.at)}`)));
    }

    function drawList() {
      const flagged = items.filter((i) => i.flagged);
      const rest = items.filter((i) => !i.flagged);
      banner.hidden = flagged.length === 0;
      clear(banner, flagged.length ? [
        h('h2', { id: 'flagged-title' }, h('span', { class: 'icon', 'aria-hidden': 'true' }, '⚠ '),
          `시술 후 위험 신호 ${flagged.length}건: 먼저 답해 주세요`),
        h('p', {}, '출혈·부기·발열처럼 시술 뒤 이상을 말하는 답장입니다. 답하거나 처리할 때까지 맨 위에 고정됩니다. 급하면 환자에게 바로 전화해 주세요.'),
        h('ul', { class: 'critical-list' }, flagged.map((item) => h('li', { dataset: { key: keyOf(item) } }, pick(item)))),
      ] : []);
      clear(list, rest.map((item) => h('li', { dataset: { key: keyOf(item) } }, pick(item))));
      if (!items.length) list.append(h('li', { class: 'empty' }, '답변을 기다리는 답장이 없습니다.'));
      status.textContent = `${items.length}건${flagged.length ? ` · 위험 신호 ${flagged.length}건` : ''}`;
    }

    function empty(text) {
      clear(detail, h('div', { class: 'card' }, h('h2', { id: 'reply-title', tabindex: '-1' }, '고른 답장 없음'), h('p', { class: 'hint' }, text)));
    }

    function drawDetail(item) {
      if (!item) {
        empty(items.length ? '왼쪽 목록에서 답장을 고르세요.' : '새 답장이 오면 여기에 나타납니다.');
        return;
      }
      const pid = item.patient.id;
      const conversation = h('div', { id: 'conversation' }, h('p', { class: 'hint' }, '대화를 불러오는 중…'));
      const form = h('form', { class: 'action', id: 'answer', 'aria-labelledby': 'answer-title', novalidate: true });
      const message = h('textarea', { name: 'message', rows: 4, maxlength: 1000 });
      const confirm = h('div', { class: 'check confirm-terms', hidden: true },
        h('input', { type: 'checkbox', name: 'confirm_health_terms', id: 'answer-confirm' }),
        h('label', { for: 'answer-confirm' }, '진단명·치료명이 들어 있어도 보냅니다 (보호자가 볼 수 있음)'));
      form.append(
        h('h3', { id: 'answer-title' }, '환자에게 답변'),
        field('보낼 내용', message, '문자/알림톡으로 갑니다. 보내면 이 환자의 대기 답장이 모두 목록에서 빠집니다.'),
        confirm,
        h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary', id: 'send-answer' }, '답변 보내기')));
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        clearErrors(form);
        const body = { message: message.value.trim() };
        if (!confirm.hidden) body.confirm_health_terms = form.elements.namedItem('confirm_health_terms').checked;
        busy(form, true);
        try {
          await ctx.api(`patients/${pid}/conversation`, { method: 'POST', body });
          announce(`${item.patient.name}님에게 답변을 보냈습니다.`);
          done(item);
        } catch (error) {
          busy(form, false);
          if (error instanceof ApiError && error.code === 'health_terms') confirm.hidden = false;
          showError(form, error instanceof ApiError ? error : new ApiError(0, {}));
        }
      });

      const settle = h('form', { class: 'action', id: 'settle', 'aria-labelledby': 'settle-title' });
      const settleButton = (outcome, text, id) => {
        const button = h('button', { type: 'button', class: outcome === 'converted' ? 'primary' : 'secondary', id }, text);
        button.addEventListener('click', async () => {
          busy(settle, true);
          try {
            const answer = await ctx.api(`patients/${pid}/conversation/handled`, { method: 'POST', body: { outcome } });
            announce(outcome === 'converted'
              ? `예약으로 이어짐으로 표시했습니다${answer.converted ? '' : ' (최근 보낸 안내가 없어 답장만 처리)'}.`
              : '답변 없이 처리했습니다.');
            done(item);
          } catch (error) {
            busy(settle, false);
            showError(settle, error instanceof ApiError ? error : new ApiError(0, {}));
          }
        });
        return button;
      };
      settle.append(h('h3', { id: 'settle-title' }, '답변 없이 마치기'),
        h('p', { class: 'hint' }, '“예약으로 이어짐”은 최근 보낸 안내를 전환으로 기록합니다.'),
        h('div', { class: 'form-actions row' },
          settleButton('converted', '예약으로 이어짐', 'mark-converted'),
          settleButton('handled', '답변 필요 없음', 'mark-handled')));

      clear(detail,
        h('div', { class: `card reply-card${item.flagged ? ' flagged' : ''}` },
          h('h2', { id: 'reply-title', tabindex: '-1' }, `${item.patient.name}님의 답장`),
          item.flagged ? h('p', { class: 'critical-note', role: 'note', id: 'reply-flag' },
            h('span', { class: 'icon', 'aria-hidden': 'true' }, '⚠ '), `${flagText(item)}: `,
            item.matched.length ? h('span', { class: 'phrases' }, item.matched.map((p) => h('mark', {}, p))) : '분류기 판단',
            item.complaint_id ? [' · ', h('a', { href: `#/complaints/${item.complaint_id}` }, '긴급 민원으로도 접수됨')] : null) : null,
          h('p', { class: 'complaint-text', id: 'reply-text' }, item.message.text),
          h('dl', { class: 'facts' },
            h('dt', {}, '받은 때'), h('dd', {}, timeTag(item.message.at), ` (${waitedFor(item.message.at)})`),
            h('dt', {}, '긴급도'), h('dd', {}, urgencyBadge(item.urgency)),
            h('dt', {}, '차트번호'), h('dd', {}, item.patient.chart_no || '없음'),
            h('dt', {}, '부서'), h('dd', {}, item.department ? ctx.departmentName(item.department) : '—'),
            h('dt', {}, '환자'), h('dd', {}, h('a', { href: `#/patients/${pid}`, id: 'to-patient' }, '환자 정보·시술 기록 보기')))),
        h('div', { class: 'reply-grid' },
          h('section', { class: 'card manual', id: 'manual', 'aria-labelledby': 'manual-title' },
            h('h2', { id: 'manual-title' }, item.manual ? `상담 매뉴얼 · ${item.manual.name}` : '상담 매뉴얼'),
            item.manual ? h('p', { class: 'manual-text' }, item.manual.text) : h('p', { class: 'hint' }, '이 답장에 맞는 시술 매뉴얼이 없습니다.')),
          h('section', { class: 'card reply-work', 'aria-labelledby': 'work-title' },
            h('h2', { id: 'work-title', class: 'visually-hidden' }, '답변하기'), form, settle)),
        h('div', { class: 'reply-grid' },
          h('section', { class: 'card', 'aria-labelledby': 'conversation-title' }, h('h2', { id: 'conversation-title' }, '대화'), conversation),
          h('section', { class: 'card', 'aria-labelledby': 'recent-title' }, h('h2', { id: 'recent-title' }, '최근 보낸 안내'),
            item.recent_touchpoints.length
              ? h('ul', { class: 'tp-list', id: 'recent-touchpoints' }, item.recent_touchpoints.map((t) => touchpointLine(ctx.config, t)))
              : h('p', { class: 'hint' }, '보낸 안내가 없습니다.'))));
      shownWaiting = waitingOf(pid);
      loadConversation(item);
    }

    function waitingOf(pid) {
      return items.filter((i) => i.patient.id === pid).map(keyOf).sort().join(' ');
    }

    function loadConversation(item) {
      const holder = detail.querySelector('#conversation');
      ctx.api(`patients/${item.patient.id}/conversation`).then((answer) => {
        if (!stopped && selected === keyOf(item) && holder.isConnected) clear(holder, thread(answer.messages));
      }).catch((error) => {
        if (!stopped && holder.isConnected) clear(holder, h('p', { class: 'form-error', role: 'alert' }, error.text ? error.text() : String(error)));
      });
    }

    async function done(item) {
      // the patient's other waiting replies went with this one; show the next in line
      const gone = item.patient.id;
      const next = items.find((i) => i.patient.id !== gone && keyOf(i) !== keyOf(item));
      selected = next ? keyOf(next) : null;
      await load(true, true);
    }

    async function load(quiet, redraw = false) {
      try {
        const answer = await ctx.api('replies');
        if (stopped) return;
        problem.hidden = true;
        const keys = new Set(answer.replies.map(keyOf));
        if (known) {
          const added = answer.replies.filter((i) => !known.has(keyOf(i)));
          if (added.length) {
            const flagged = added.filter((i) => i.flagged).length;
            announce(`새 답장 ${added.length}건${flagged ? `, 그중 위험 신호 ${flagged}건` : ''}이 왔습니다.`);
          }
        }
        known = keys;
        items = answer.replies;
        const before = selected;
        if (!selected || !keys.has(selected)) selected = items.length ? keyOf(items[0]) : null;
        drawList();
        const current = items.find((i) => keyOf(i) === selected);
        if (redraw || before !== selected || !detail.firstChild) {
          drawDetail(current);
          if (redraw) {
            const title = detail.querySelector('#reply-title');
            if (title) title.focus();
          }
        } else if (current && waitingOf(current.patient.id) !== shownWaiting) {
          // the patient wrote again: the thread shows it; what staff are typing stays
          shownWaiting = waitingOf(current.patient.id);
          loadConversation(current);
        }
      } catch (error) {
        if (stopped) return;
        if (!quiet || !items.length) {
          problem.textContent = error instanceof ApiError ? error.text() : String(error);
          problem.hidden = false;
        }
      }
    }

    load(false);
    const poll = window.setInterval(() => load(true), POLL_MS);
    return () => {
      stopped = true;
      window.clearInterval(poll);
    };
  },
};
