// 민원 상세: the text, the classifier's reading with a one-click correction, the timeline, and
// the actions (acknowledge, assign, reply from a saved answer, resolve, close, reopen), with every
// message the complaint sent and its delivery status.

import { ApiError } from './api.js';
import { h, clear, announce, statusBadge, urgencyBadge, messageBadge, slaTag, timeTag, when, field, select, showError, clearErrors, busy } from './ui.js';
import { CHANNEL, KIND, MESSAGE_CHANNEL, RECIPIENT, STATUS, TEMPLATE, URGENCY, label } from './labels.js';

const JUDGES = { rules: '규칙', model: '학습 모델', bedrock: 'Bedrock', staff: '직원' };

function byWhom(by) {
  return String(by).split('+').map((part) => JUDGES[part] || part).join('+');
}

/** +821012345678 -> 010-1234-5678 (a masked number stays as it is). */
function phone(value) {
  const found = /^\+82(1\d)(\d{3,4})(\d{4})$/.exec(value || '');
  return found ? `0${found[1]}-${found[2]}-${found[3]}` : value;
}

const OPEN = ['received', 'acknowledged', 'assigned', 'in_progress', 'awaiting_patient'];

function textarea(name, attributes = {}) {
  return h('textarea', { name, rows: 4, ...attributes });
}

function checkbox(name, text, checked) {
  const id = `f-${name}-${Math.random().toString(36).slice(2, 7)}`;
  return h('div', { class: 'check' }, h('input', { type: 'checkbox', name, id, checked: checked || undefined }), h('label', { for: id }, text));
}

/** A form that POSTs to the complaint and redraws the screen with the answer. */
function actionForm(ctx, complaint, { id, title, path, build, submit, help, health = false }) {
  const form = h('form', { class: 'action', id, 'aria-labelledby': `${id}-title`, novalidate: true });
  const confirm = h('div', { class: 'check confirm-terms', hidden: true },
    h('input', { type: 'checkbox', name: 'confirm_health_terms', id: `${id}-confirm` }),
    h('label', { for: `${id}-confirm` }, '진단명·치료명이 들어 있어도 보냅니다 (보호자가 볼 수 있음)'));
  const parts = [h('h3', { id: `${id}-title` }, title), help ? h('p', { class: 'hint' }, help) : null, ...build(form)];
  if (health) parts.push(confirm);
  parts.push(h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary' }, submit)));
  form.append(...parts.filter(Boolean));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = {};
    for (const element of form.elements) {
      if (!element.name) continue;
      if (element.type === 'checkbox') {
        if (element.name === 'confirm_health_terms' && confirm.hidden) continue;
        body[element.name] = element.checked;
      } else if (element.value.trim() !== '') {
        body[element.name] = element.value.trim();
      }
    }
    busy(form, true);
    try {
      const updated = await ctx.api(`complaints/${complaint.id}/${path}`, { method: 'POST', body });
      announce(`${title}: 저장했습니다.`);
      ctx.redraw(updated, id);
    } catch (error) {
      busy(form, false);
      if (error instanceof ApiError && error.code === 'health_terms') confirm.hidden = false;
      showError(form, error instanceof ApiError ? error : new ApiError(0, {}));
    }
  });
  return form;
}

function timeline(complaint, config) {
  const entries = [];
  for (const event of complaint.history || []) {
    entries.push({ at: event.at, icon: (STATUS[event.status] || {}).icon || '•', what: `상태: ${label(STATUS, event.status)}`, by: CHANNEL[event.by] || event.by, text: event.note });
  }
  for (const reply of complaint.replies || []) {
    entries.push({ at: reply.at, icon: '✉', what: '환자에게 답변', by: reply.by, text: reply.message });
  }
  for (const message of complaint.inbound_messages || []) {
    entries.push({ at: message.at || message.received_at, icon: '✆', what: '환자가 보낸 문자', by: label(CHANNEL, message.channel), text: message.text || message.body });
  }
  for (const [level, at] of Object.entries(complaint.escalations || {})) {
    entries.push({ at: typeof at === 'string' ? at : at && at.at, icon: '⇧', what: `기한 초과 알림 (${level})`, by: '시스템', text: null });
  }
  if (complaint.correction) {
    const fix = complaint.correction;
    const parts = [fix.kind && `유형 ${label(KIND, fix.kind)}`, fix.category && `분류 ${config.categories[fix.category] || fix.category}`, fix.urgency && `긴급도 ${label(URGENCY, fix.urgency)}`].filter(Boolean);
    entries.push({ at: fix.at || fix.corrected_at, icon: '✎', what: '분류 수정', by: fix.by, text: parts.join(', ') });
  }
  if (complaint.outcome) {
    entries.push({ at: complaint.resolved_at, icon: '✔', what: '처리 결과(환자 안내)', by: null, text: complaint.outcome });
  }
  entries.sort((a, b) => String(a.at).localeCompare(String(b.at)));
  return h('ol', { class: 'timeline', id: 'timeline' }, entries.map((entry) => h('li', {},
    h('span', { class: 'icon', 'aria-hidden': 'true' }, entry.icon),
    h('div', {}, h('p', { class: 'timeline-head' }, h('strong', {}, entry.what), ' · ', timeTag(entry.at), entry.by ? ` · ${entry.by}` : ''),
      entry.text ? h('p', { class: 'timeline-text' }, entry.text) : null))));
}

function messagesTable(messages) {
  if (!messages) return h('p', { class: 'hint' }, '메시지를 불러오는 중…');
  if (!messages.length) return h('p', {}, '아직 보낸 메시지가 없습니다.');
  return h('table', { class: 'messages', id: 'messages' },
    h('caption', { class: 'visually-hidden' }, '이 민원으로 보낸 메시지와 전달 상태'),
    h('thead', {}, h('tr', {}, ['보낸 때', '받는 사람', '내용', '경로', '상태'].map((text) => h('th', { scope: 'col' }, text)))),
    h('tbody', {}, messages.map((message) => h('tr', { dataset: { status: message.status } },
      h('td', {}, timeTag(message.created_at)),
      h('td', {}, `${label(RECIPIENT, message.recipient_kind)} ${message.recipient || ''}`),
      h('td', {}, label(TEMPLATE, message.template_id)),
      h('td', {}, label(MESSAGE_CHANNEL, message.channel)),
      h('td', {}, messageBadge(message.status), message.reason ? h('span', { class: 'hint' }, ` ${message.reason}`) : null)))));
}

export const screen = {
  id: 'complaint',
  title: '민원 상세',
  match: (path) => {
    const found = /^complaints\/(c[0-9a-f]{10,30})$/.exec(path);
    return found ? { id: found[1] } : null;
  },
  render(main, params, ctx) {
    const { config, staff } = ctx;
    let complaint = null;
    let messages = null;
    let stopped = false;

    clear(main, h('p', { class: 'loading' }, '불러오는 중…'));

    async function loadMessages() {
      if (!staff.changes) { // QI reads complaints, not the messages to the patient (roles.md)
        messages = null;
        const holder = main.querySelector('#messages-holder');
        if (holder) clear(holder, h('p', { class: 'notice' }, '보낸 메시지는 고객지원팀과 담당 부서만 봅니다.'));
        return;
      }
      try {
        const answer = await ctx.api('messages', { query: { complaint: params.id, limit: 100 } });
        messages = answer.messages;
      } catch (error) {
        const holder = main.querySelector('#messages-holder');
        if (holder && !stopped) {
          holder.append(h('p', { class: 'form-error', role: 'alert' }, error.text ? error.text() : String(error)));
        }
        return;
      }
      if (!stopped) {
        const holder = main.querySelector('#messages-holder');
        if (holder) clear(holder, messagesTable(messages));
      }
    }

    function draw(focusId) {
      const c = complaint;
      const open = OPEN.includes(c.status);
      const guess = c.classifier || {};
      document.title = `${c.code} · 민원 상세 · 소통`;
      const departments = config.departments.map((d) => [d.id, d.name]);
      const categories = Object.entries(config.categories);

      const correction = actionForm(ctx, c, {
        id: 'correct', title: '분류 바로잡기', path: 'classification', submit: '분류 저장',
        help: '분류기가 틀렸으면 고르고 저장하세요. 처음 판단은 기록에 남고, 수정은 학습에 쓰입니다.',
        build: () => [h('div', { class: 'row' },
          field('유형', select('kind', Object.entries(KIND), c.kind)),
          field('분류', select('category', categories, c.category)),
          field('긴급도', select('urgency', Object.entries(URGENCY).map(([k, v]) => [k, v.text]), c.urgency)))],
      });

      const actions = [];
      if (staff.changes) {
        if (c.status === 'received') {
          const ack = h('button', { type: 'button', class: 'primary', id: 'acknowledge' }, '확인했습니다 (접수 확인)');
          ack.addEventListener('click', async () => {
            ack.disabled = true;
            try {
              ctx.redraw(await ctx.api(`complaints/${c.id}/status`, { method: 'POST', body: { status: 'acknowledged' } }), 'acknowledge');
              announce('접수를 확인했습니다.');
            } catch (error) {
              ack.disabled = false;
              ack.after(h('p', { class: 'form-error', role: 'alert' }, error.text ? error.text() : String(error)));
            }
          });
          actions.push(h('div', { class: 'action' }, h('h3', {}, '접수 확인'), h('p', { class: 'hint' }, '확인하면 확인 기한이 멈추고 긴급 고정이 풀립니다.'), ack));
        }
        if (open) {
          actions.push(actionForm(ctx, c, {
            id: 'assign', title: '담당 배정', path: 'assign', submit: '배정',
            build: () => [
              field('담당자', h('input', { name: 'assignee', type: 'text', value: c.assignee || '', autocomplete: 'off' }), '직원 아이디 또는 이름'),
              field('부서', select('department', departments, c.department)),
              field('메모(내부용)', textarea('note', { rows: 2 }))],
          }));
          const templates = config.answer_templates || [];
          actions.push(actionForm(ctx, c, {
            id: 'reply', title: '환자에게 답변', path: 'replies', submit: '답변 보내기', health: true,
            build: () => {
              const message = textarea('message', { rows: 5, maxlength: 1000 });
              const picker = select('template', [['', '저장된 답변 고르기'], ...templates.map((t) => [t.id, t.title])], '', { form: 'none' });
              picker.removeAttribute('name');
              const insert = h('button', { type: 'button', class: 'secondary', id: 'insert-template' }, '답변 넣기');
              insert.addEventListener('click', () => {
                const found = templates.find((t) => t.id === picker.value);
                if (!found) { picker.focus(); return; }
                message.value = message.value.trim() ? `${message.value.trim()}\n${found.text}` : found.text;
                message.focus();
              });
              return [
                h('div', { class: 'row template-row' }, field('저장된 답변', picker), insert),
                field('보낼 내용', message, '환자에게 문자/알림톡으로 갑니다. 진단명·치료명은 빼 주세요.'),
                checkbox('notify_patient', '환자에게 보냄', true),
                checkbox('awaiting_patient', '환자에게 묻는 내용입니다 (답이 올 때까지 기한 멈춤)', false)];
            },
          }));
          actions.push(actionForm(ctx, c, {
            id: 'resolve', title: '처리 완료', path: 'resolve', submit: '처리 완료', health: true,
            build: () => [
              field('처리 결과(환자에게 안내)', textarea('outcome', { maxlength: 1000 })),
              field('메모(내부용)', textarea('note', { rows: 2 })),
              checkbox('notify_patient', '처리 결과를 환자에게 보냄', true)],
          }));
        }
        if (c.status === 'resolved') {
          actions.push(actionForm(ctx, c, {
            id: 'close', title: '종결', path: 'close', submit: '종결',
            help: '종결하면 환자에게 만족도 조사가 갑니다.',
            build: () => [field('메모(내부용)', textarea('note', { rows: 2 }))],
          }));
        }
        if (c.status === 'resolved' || c.status === 'closed') {
          actions.push(actionForm(ctx, c, {
            id: 'reopen', title: '다시 열기', path: 'reopen', submit: '다시 열기',
            build: () => [field('사유', textarea('note', { rows: 2 }))],
          }));
        }
      } else {
        actions.push(h('p', { class: 'notice' }, '읽기 전용입니다 (적정관리팀은 민원을 바꾸지 않습니다).'));
      }

      clear(main,
        h('p', { class: 'back' }, h('a', { href: '#/inbox' }, '← 민원함')),
        h('div', { class: 'screen-head' },
          h('h1', { id: 'screen-title', tabindex: '-1' }, `민원 ${c.code}`),
          h('div', { class: 'item-meta', id: 'complaint-status' }, urgencyBadge(c.urgency), statusBadge(c.status), open ? slaTag(c) : null),
          h('button', { type: 'button', class: 'secondary to-actions', onclick: () => { const aside = main.querySelector('#actions'); aside.scrollIntoView({ block: 'start' }); aside.focus(); } }, '처리하기 ↓')),
        c.urgency === 'critical' && c.status === 'received'
          ? h('p', { class: 'critical-note', role: 'note' }, h('span', { class: 'icon', 'aria-hidden': 'true' }, '⚠ '), '긴급 민원입니다. 먼저 확인해 주세요.') : null,
        h('div', { class: 'detail' },
          h('div', { class: 'detail-main' },
            h('section', { class: 'card', 'aria-labelledby': 'text-title' },
              h('h2', { id: 'text-title' }, '내용'),
              h('p', { class: 'complaint-text', id: 'complaint-text' }, c.text),
              h('dl', { class: 'facts' },
                h('dt', {}, '유형·분류'), h('dd', {}, `${label(KIND, c.kind)} · ${config.categories[c.category] || c.category}`),
                h('dt', {}, '부서'), h('dd', { id: 'complaint-department' }, ctx.departmentName(c.department)),
                h('dt', {}, '담당자'), h('dd', { id: 'complaint-assignee' }, c.assignee || '없음'),
                h('dt', {}, '접수 경로'), h('dd', {}, label(CHANNEL, c.channel)),
                h('dt', {}, '접수'), h('dd', {}, when(c.created_at)),
                h('dt', {}, '확인 기한'), h('dd', {}, when(c.ack_due)),
                h('dt', {}, '처리 기한'), h('dd', {}, when(c.resolve_due)),
                h('dt', {}, '연락처'), h('dd', {}, [c.contact && c.contact.name, c.contact && phone(c.contact.phone), c.contact && c.contact.email].filter(Boolean).join(' · ') || '없음'))),
            h('section', { class: 'card', 'aria-labelledby': 'class-title', id: 'classification' },
              h('h2', { id: 'class-title' }, '분류기 판단'),
              h('p', {}, `유형 ${label(KIND, guess.kind)} · 분류 ${config.categories[guess.category] || guess.category || '—'} · 긴급도 ${label(URGENCY, guess.urgency)}`,
                guess.by ? h('span', { class: 'hint' }, ` (판단: ${byWhom(guess.by)})`) : null),
              guess.matched && guess.matched.length
                ? h('p', {}, '찾은 표현: ', h('span', { class: 'phrases' }, guess.matched.map((phrase) => h('mark', {}, phrase))))
                : h('p', { class: 'hint' }, '찾은 표현 없음'),
              staff.changes ? correction : null),
            h('section', { class: 'card', 'aria-labelledby': 'timeline-title' },
              h('h2', { id: 'timeline-title' }, '처리 기록'), timeline(c, config)),
            h('section', { class: 'card', 'aria-labelledby': 'messages-title' },
              h('h2', { id: 'messages-title' }, '보낸 메시지'), h('div', { id: 'messages-holder' }, messagesTable(messages)))),
          h('aside', { class: 'detail-actions', id: 'actions', tabindex: '-1', 'aria-labelledby': 'actions-title' }, h('h2', { id: 'actions-title' }, '처리'), actions)));
      const target = focusId && main.querySelector(`#${focusId}`);
      if (target) {
        target.setAttribute('tabindex', '-1');
        target.focus();
      } else if (document.activeElement === document.body || !document.activeElement) {
        main.querySelector('#screen-title').focus();
      }
    }

    ctx.redraw = (updated, afterId) => {
      complaint = { ...complaint, ...updated };
      // the answer of an action is the complaint without its inbound messages: keep them
      draw(main.querySelector(`#${afterId}`) ? afterId : null);
      loadMessages();
      window.setTimeout(() => { if (!stopped) loadMessages(); }, 2500); // the sender is asynchronous
    };

    (async () => {
      try {
        complaint = await ctx.api(`complaints/${params.id}`);
      } catch (error) {
        if (stopped) return;
        const missing = error instanceof ApiError && (error.status === 404 || error.status === 403);
        clear(main,
          h('p', { class: 'back' }, h('a', { href: '#/inbox' }, '← 민원함')),
          h('section', { class: 'card' },
            h('h1', { id: 'screen-title', tabindex: '-1' }, missing ? '민원 없음 또는 권한 없음' : '민원을 불러오지 못했습니다'),
            h('p', { id: 'not-found' }, missing
              ? '이 번호의 민원이 없거나, 다른 부서의 민원이라 볼 수 없습니다.'
              : (error.text ? error.text() : String(error)))));
        main.querySelector('#screen-title').focus();
        return;
      }
      if (stopped) return;
      draw(null);
      loadMessages();
    })();
    const poll = window.setInterval(() => { if (complaint) loadMessages(); }, 20000); // delivery reports
    return () => {
      stopped = true;
      window.clearInterval(poll);
    };
  },
};
