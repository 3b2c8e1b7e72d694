// What the replies and patients screens share: the recall's words (steps, touchpoint statuses),
// a patient's phone as staff write it, and a patient's conversation drawn as a thread.

import { h, badge, timeTag } from './ui.js';

export const STEP = {
  precautions: '시술 전 주의사항',
  aftercare: '다음 날 관리 안내',
  feedback: '경과 확인',
  recall: '정기 검진 안내',
  next_step: '다음 단계 제안',
};

export const TOUCHPOINT = {
  planned: { text: '보낼 예정', icon: '◔' },
  queued: { text: '보냄', icon: '↗' },
  converted: { text: '예약으로 이어짐', icon: '✔' },
  cancelled: { text: '취소됨', icon: '⊘' },
  skipped: { text: '건너뜀', icon: '–' },
};

export const touchpointBadge = (status) => badge('touchpoint', status, TOUCHPOINT);

export function stepName(step) {
  return STEP[step] || step;
}

export function tagName(config, tag) {
  const found = (config.treatment_tags || []).find((t) => t.id === tag);
  return found ? found.name : tag;
}

/** +821012345678 -> 010-1234-5678 (anything else as it is). */
export function phone(value) {
  const found = /^\+82(1\d)(\d{3,4})(\d{4})$/.exec(value || '');
  return found ? `0${found[1]}-${found[2]}-${found[3]}` : (value || '');
}

/** When a touchpoint went out or will go: sent ones by their queued time, the rest by due. */
export function touchpointTime(t) {
  return t.status === 'queued' || t.status === 'converted' ? (t.queued_at || t.due_at) : t.due_at;
}

export function touchpointLine(config, t) {
  return h('li', { class: `tp tp-${t.status}`, dataset: { step: t.step, status: t.status } },
    touchpointBadge(t.status), ' ',
    h('span', { class: 'tp-what' }, `${tagName(config, t.tag)} · ${stepName(t.step)}`), ' ',
    h('span', { class: 'hint' }, timeTag(touchpointTime(t))),
    t.status_reason && t.status === 'cancelled' ? h('span', { class: 'hint' }, ` (${t.status_reason})`) : null);
}

/** The conversation, oldest first: the patient's messages on the left, staff answers indented. */
export function thread(messages) {
  if (!messages || !messages.length) return h('p', { class: 'hint' }, '주고받은 메시지가 없습니다.');
  return h('ol', { class: 'thread', id: 'thread' }, messages.map((m) => h('li', { class: `say say-${m.direction === 'in' ? 'in' : 'out'}` },
    h('p', { class: 'say-head' },
      h('span', { class: 'icon', 'aria-hidden': 'true' }, m.direction === 'in' ? '✆ ' : '↩ '),
      h('strong', {}, m.direction === 'in' ? '환자' : `직원 ${m.by || ''}`), ' · ', timeTag(m.at)),
    h('p', { class: 'say-text' }, m.text))));
}
