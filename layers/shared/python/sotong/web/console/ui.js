// Small DOM helpers. Text goes in as text (never innerHTML), so nothing a patient typed can run.

import { STATUS, URGENCY, MESSAGE_STATUS, label } from './labels.js';

/** h('button', {class: 'x', onclick: fn}, 'text', child, ...) */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2), value);
    } else if (name === 'class') {
      element.className = value;
    } else if (name === 'dataset') {
      Object.assign(element.dataset, value);
    } else if (value === true) {
      element.setAttribute(name, '');
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** Say something to screen-reader users without taking their focus (aria-live="polite"). */
export function announce(text) {
  const region = document.getElementById('polite');
  region.textContent = '';
  window.setTimeout(() => { region.textContent = text; }, 50);
}

export function badge(kind, key, table) {
  const found = table[key] || { text: key, icon: '•' };
  return h('span', { class: `badge ${kind}-${key}` },
    h('span', { class: 'icon', 'aria-hidden': 'true' }, found.icon), ' ', found.text);
}

export const statusBadge = (status) => badge('status', status, STATUS);
export const urgencyBadge = (urgency) => badge('urgency', urgency, URGENCY);
export const messageBadge = (status) => badge('message', status, MESSAGE_STATUS);

const DATE_TIME = new Intl.DateTimeFormat('ko-KR', {
  timeZone: 'Asia/Seoul', month: 'numeric', day: 'numeric', weekday: 'short',
  hour: 'numeric', minute: '2-digit',
});

export function when(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : DATE_TIME.format(date);
}

export function timeTag(iso) {
  return h('time', { datetime: iso || '' }, when(iso));
}

function span(ms) {
  const minutes = Math.max(1, Math.round(Math.abs(ms) / 60000));
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  const rest = minutes % 60;
  if (days) return `${days}일 ${hours}시간`;
  if (hours) return `${hours}시간 ${rest}분`;
  return `${rest}분`;
}

let skew = 0; // the server's clock minus this PC's (desk PCs' clocks drift)

export function setServerTime(iso) {
  const server = new Date(iso).getTime();
  if (!Number.isNaN(server)) skew = server - Date.now();
}

export function serverNow() {
  return Date.now() + skew;
}

/** The SLA clock of a complaint: which deadline runs, and how far it is. */
export function slaOf(item, now = serverNow()) {
  if (item.status === 'awaiting_patient') {
    return { paused: true, overdue: false, text: '환자 답변 대기 중(기한 멈춤)', due: null, left: Infinity };
  }
  if (item.status === 'resolved' || item.status === 'closed') {
    return { done: true, overdue: false, text: label(STATUS, item.status), due: null, left: Infinity };
  }
  const acknowledging = item.status === 'received';
  const due = acknowledging ? item.ack_due : item.resolve_due;
  const what = acknowledging ? '확인' : '처리';
  if (!due) return { overdue: false, text: `${what} 기한 없음`, due: null, left: Infinity };
  const left = new Date(due).getTime() - now;
  if (left < 0) return { overdue: true, text: `${what} 기한 ${span(left)} 지남`, due, left };
  return { overdue: false, soon: left < 3600000, text: `${what} 기한까지 ${span(left)}`, due, left };
}

/** Overdue first (the longest overdue on top), then by the nearest deadline; paused last. */
export function overdueFirst(items, now = serverNow()) {
  return [...items].sort((a, b) => {
    const x = slaOf(a, now);
    const y = slaOf(b, now);
    if (x.overdue !== y.overdue) return x.overdue ? -1 : 1;
    if (x.left !== y.left) return x.left - y.left;
    return String(a.created_at).localeCompare(String(b.created_at));
  });
}

export function slaTag(item, now) {
  const sla = slaOf(item, now);
  const icon = sla.overdue ? '⚠' : sla.paused ? '‖' : sla.done ? '✔' : '◔';
  return h('span', { class: `sla${sla.overdue ? ' sla-overdue' : ''}${sla.soon ? ' sla-soon' : ''}`,
    title: sla.due ? `기한: ${when(sla.due)}` : undefined },
  h('span', { class: 'icon', 'aria-hidden': 'true' }, icon), ' ',
  sla.overdue ? h('strong', {}, '기한 초과 ') : null, sla.text);
}

/** A labelled field: <div><label/><control/><p error/></div>, wired for errors. */
export function field(labelText, control, hint) {
  const id = control.id || `f-${control.name}-${Math.random().toString(36).slice(2, 8)}`;
  control.id = id;
  const error = h('p', { class: 'field-error', id: `${id}-error`, hidden: true });
  const help = hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null;
  if (help) control.setAttribute('aria-describedby', help.id);
  return h('div', { class: 'field' }, h('label', { for: id }, labelText), control, help, error);
}

export function select(name, options, value, attributes = {}) {
  return h('select', { name, ...attributes },
    options.map(([optionValue, text]) => h('option', {
      value: optionValue, selected: optionValue === (value ?? '') ? true : undefined,
    }, text)));
}

/** Clear a form's error marks. */
export function clearErrors(form) {
  for (const element of form.querySelectorAll('[aria-invalid]')) {
    element.removeAttribute('aria-invalid');
    const described = (element.getAttribute('aria-describedby') || '').split(' ')
      .filter((id) => !id.endsWith('-error')).join(' ');
    if (described) element.setAttribute('aria-describedby', described);
    else element.removeAttribute('aria-describedby');
  }
  for (const error of form.querySelectorAll('.field-error')) { error.hidden = true; error.textContent = ''; }
  const summary = form.querySelector('.form-error');
  if (summary) { summary.hidden = true; summary.textContent = ''; }
}

/** The API's (pydantic's) English problems, in Korean; anything else as it came. */
export function korean(problem) {
  const text = String(problem || '');
  let found;
  if (/^Field required$/i.test(text)) return '꼭 입력해 주세요.';
  if ((found = /at least (\d+) character/i.exec(text))) return `${found[1]}자 이상 입력해 주세요.`;
  if ((found = /at most (\d+) character/i.exec(text))) return `${found[1]}자 이하로 줄여 주세요.`;
  if (/names health information/i.test(text)) return `진단명·치료명이 들어 있습니다 (${text.split(':').slice(1).join(':').trim()}). 빼거나, 아래에서 확인하고 다시 보내 주세요.`;
  if (/give an assignee, a department or both/i.test(text)) return '담당자나 부서를 정해 주세요.';
  return text;
}

/** Show an API error next to the field it names (`body.outcome` -> the form's `outcome`),
 * or at the top of the form; focus it. */
export function showError(form, error) {
  clearErrors(form);
  const problems = error.fields && error.fields.length ? error.fields
    : [{ field: error.field, problem: error.message }];
  let first = null;
  for (const problem of problems) {
    const name = String(problem.field || '').split('.').pop();
    const control = name ? form.elements.namedItem(name) : null;
    if (control && control.id) {
      const note = form.querySelector(`#${CSS.escape(control.id)}-error`);
      if (note) {
        note.textContent = korean(problem.problem) || error.korean;
        note.hidden = false;
        control.setAttribute('aria-invalid', 'true');
        const described = (control.getAttribute('aria-describedby') || '').split(' ').filter(Boolean);
        control.setAttribute('aria-describedby', [...described, note.id].join(' '));
        first = first || control;
        continue;
      }
    }
  }
  if (!first) {
    let summary = form.querySelector('.form-error');
    if (!summary) {
      summary = h('p', { class: 'form-error', role: 'alert', tabindex: '-1' });
      form.prepend(summary);
    }
    summary.textContent = error.text();
    summary.hidden = false;
    first = summary;
  }
  first.focus();
}

export function busy(form, on) {
  for (const button of form.querySelectorAll('button')) button.disabled = on;
  form.setAttribute('aria-busy', on ? 'true' : 'false');
}
