// 환자: find a patient by chart number or phone (GET /patients: the id comes from the chart
// number, phones from their index; never a table scan), then one page: contact and consents,
// bookings and visits, and (for the CS admin and department staff) the treatments, planned,
// sent and cancelled touchpoints and bookings on one timeline; record a treatment, a booking or
// a visit, pause or resume. Reception sees contact, consents and bookings only (the API says
// so too), so their page has no clinical panels at all.

import { ApiError } from './api.js';
import { h, clear, announce, serverNow, timeTag, when, field, select, showError, clearErrors, busy } from './ui.js';
import { phone, stepName, tagName, touchpointBadge, touchpointTime } from './recall.js';

const CONSENT = { contact: '진료 안내 문자', marketing: '광고성 안내', night: '야간 광고(21시~8시)' };
const KST = '+09:00';
let lastSearch = {}; // what was searched last, shown again on the patient's page

function yes(value) {
  return value ? h('span', { class: 'yes' }, h('span', { class: 'icon', 'aria-hidden': 'true' }, '✔'), ' 동의') : h('span', { class: 'no' }, h('span', { class: 'icon', 'aria-hidden': 'true' }, '✖'), ' 동의 안 함');
}

function today() {
  return new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Seoul' }).format(new Date());
}

function searchForm(ctx, initial) {
  const form = h('form', { class: 'filters patient-search', id: 'patient-search', role: 'search', 'aria-label': '환자 찾기', novalidate: true });
  const by = select('by', [['chart_no', '차트번호'], ['phone', '휴대폰 번호']], initial.by || 'chart_no');
  const input = h('input', { name: 'q', type: 'search', value: initial.q || '', autocomplete: 'off', required: true, inputmode: initial.by === 'phone' ? 'tel' : 'text' });
  by.addEventListener('change', () => { input.setAttribute('inputmode', by.value === 'phone' ? 'tel' : 'text'); input.focus(); });
  form.append(
    field('찾을 항목', by),
    field('차트번호 또는 휴대폰', input, '예: C-10021, 010-1234-5678'),
    h('div', { class: 'filter-actions' }, h('button', { type: 'submit', class: 'primary' }, '찾기')));
  return { form, by, input };
}

function timeline(ctx, patient, touchpoints) {
  const entries = [];
  const treatments = new Map();
  for (const t of touchpoints) {
    if (!treatments.has(t.treatment_id)) treatments.set(t.treatment_id, { tag: t.tag, date: t.treatment_date });
  }
  for (const [tag, day] of Object.entries(patient.last_treatment || {})) {
    if (![...treatments.values()].some((t) => t.tag === tag && t.date === day)) treatments.set(`${tag}:${day}`, { tag, date: day });
  }
  for (const t of treatments.values()) {
    entries.push({ at: `${t.date}T00:00:00${KST}`, day: true, icon: '✚', kind: 'treatment', what: `시술: ${tagName(ctx.config, t.tag)}`, extra: null });
  }
  for (const t of touchpoints) {
    entries.push({ at: touchpointTime(t), icon: null, kind: `touchpoint-${t.status}`, what: `${tagName(ctx.config, t.tag)} · ${stepName(t.step)}`, badge: touchpointBadge(t.status), extra: t.status === 'cancelled' ? t.status_reason : null, ahead: t.status === 'planned' });
  }
  if (patient.next_booking_at) entries.push({ at: patient.next_booking_at, icon: '▣', kind: 'booking', what: '예약', extra: null, ahead: true });
  if (patient.last_visit_at) entries.push({ at: patient.last_visit_at, icon: '◆', kind: 'visit', what: '최근 방문', extra: null });
  entries.sort((a, b) => new Date(a.at) - new Date(b.at));
  if (!entries.length) return h('p', { class: 'hint' }, '시술 기록이 없습니다.');
  const now = serverNow();
  const future = (entry) => entry.ahead && new Date(entry.at).getTime() > now;
  return h('ol', { class: 'timeline', id: 'patient-timeline' }, entries.map((entry) => h('li', { class: `tl-${entry.kind}${future(entry) ? ' future' : ''}`, dataset: { kind: entry.kind } },
    h('span', { class: 'icon', 'aria-hidden': 'true' }, entry.icon || '•'),
    h('div', {},
      h('p', { class: 'timeline-head' }, h('strong', {}, entry.what), ' ', entry.badge || null, ' · ',
        entry.day ? h('time', { datetime: entry.at }, entry.at.slice(0, 10)) : timeTag(entry.at),
        future(entry) ? h('span', { class: 'hint' }, ' (예정)') : null),
      entry.extra ? h('p', { class: 'timeline-text' }, entry.extra) : null))));
}

/** A small form posting to the patient and reloading the page with the answer. */
function patientForm(ctx, pid, { id, title, path, build, submit, body, done }) {
  const form = h('form', { class: 'action', id, 'aria-labelledby': `${id}-title`, novalidate: true });
  form.append(h('h3', { id: `${id}-title` }, title), ...build(form), h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary' }, submit)));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    busy(form, true);
    try {
      await ctx.api(`patients/${pid}/${path}`, { method: 'POST', body: body(form) });
      announce(`${title}: 저장했습니다.`);
      done(id);
    } catch (error) {
      busy(form, false);
      showError(form, error instanceof ApiError ? error : new ApiError(0, {}));
    }
  });
  return form;
}

function value(form, name) {
  const element = form.elements.namedItem(name);
  return element ? element.value.trim() : '';
}

function withoutEmpty(body) {
  return Object.fromEntries(Object.entries(body).filter(([, v]) => v !== '' && v !== undefined));
}

export const screen = {
  id: 'patients',
  title: '환자',
  nav: true,
  roles: ['cs_admin', 'department_staff', 'reception'],
  match: (path) => {
    if (path === 'patients') return {};
    const found = /^patients\/(p[0-9a-f]{20})$/.exec(path);
    return found ? { id: found[1] } : null;
  },
  render(main, params, ctx) {
    const { staff, config } = ctx;
    const clinical = staff.role === 'cs_admin' || staff.role === 'department_staff';
    let stopped = false;
    const results = h('div', { id: 'patient-results', 'aria-live': 'polite' });
    const page = h('div', { id: 'patient-page' });
    const search = searchForm(ctx, lastSearch);
    clear(main,
      h('div', { class: 'screen-head' }, h('h1', { id: 'screen-title', tabindex: '-1' }, '환자'),
        h('span', { class: 'hint' }, staff.role === 'department_staff' ? `${ctx.departmentName(staff.department)} 환자만 보입니다` : '차트번호나 휴대폰 번호로 찾습니다')),
      search.form, results, page);

    search.form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(search.form);
      const q = search.input.value.trim();
      lastSearch = { by: search.by.value, q };
      if (!q) {
        showError(search.form, new ApiError(400, { message: 'Field required', field: 'query.q' }));
        return;
      }
      busy(search.form, true);
      try {
        const answer = await ctx.api('patients', { query: { [search.by.value]: q } });
        busy(search.form, false);
        if (stopped) return;
        clear(page);
        const found = answer.patients;
        if (found.length === 1) {
          clear(results);
          if (params.id === found[0].id) show(found[0].id);
          else ctx.go(`#/patients/${found[0].id}`);
          return;
        }
        clear(results, found.length
          ? h('section', { class: 'card' }, h('h2', {}, `찾은 환자 ${found.length}명`),
            h('ul', { class: 'patient-list' }, found.map((p) => h('li', {}, h('a', { href: `#/patients/${p.id}` }, `${p.name} · ${p.chart_no || '차트번호 없음'} · ${phone(p.phone)}`)))))
          : h('p', { class: 'notice', id: 'no-patient', role: 'status' },
            staff.role === 'department_staff'
              ? '찾는 환자가 없습니다. 다른 부서의 환자는 이 화면에 나타나지 않습니다.'
              : '찾는 환자가 없습니다. 차트번호나 번호를 확인해 주세요.'));
      } catch (error) {
        busy(search.form, false);
        const named = error instanceof ApiError && error.field && /chart_no|phone/.test(error.field)
          ? new ApiError(error.status, { message: error.message, field: 'query.q' }) : error;
        showError(search.form, named instanceof ApiError ? named : new ApiError(0, {}));
      }
    });

    async function show(pid, focusId) {
      clear(page, h('p', { class: 'loading' }, '불러오는 중…'));
      let patient;
      let touchpoints = [];
      try {
        patient = await ctx.api(`patients/${pid}`);
        if (clinical) touchpoints = (await ctx.api(`patients/${pid}/touchpoints`)).touchpoints;
      } catch (error) {
        if (stopped) return;
        const missing = error instanceof ApiError && (error.status === 404 || error.status === 403);
        clear(page, h('section', { class: 'card' },
          h('h2', { id: 'patient-title', tabindex: '-1' }, missing ? '환자 없음 또는 권한 없음' : '환자를 불러오지 못했습니다'),
          h('p', { id: 'not-found' }, missing ? '이 환자가 없거나, 다른 부서의 환자라 볼 수 없습니다.' : (error.text ? error.text() : String(error)))));
        page.querySelector('#patient-title').focus();
        return;
      }
      if (stopped) return;
      document.title = `${patient.name} · 환자 · 소통`;
      const reload = (afterId) => show(pid, afterId);
      const consents = patient.consents || {};
      const tags = (config.treatment_tags || []).filter((t) => staff.role === 'cs_admin' || t.department === staff.department);
      const actions = [];
      if (clinical && tags.length) {
        actions.push(patientForm(ctx, pid, {
          id: 'record-treatment', title: '시술 기록', path: 'treatments', submit: '시술 기록',
          build: () => [
            field('시술', select('tag', tags.map((t) => [t.id, t.name]), tags[0].id)),
            field('시술일', h('input', { type: 'date', name: 'date', value: today(), required: true })),
            field('메모', h('textarea', { name: 'note', rows: 2, maxlength: 500 }))],
          body: (form) => withoutEmpty({ tag: value(form, 'tag'), date: value(form, 'date'), note: value(form, 'note') }),
          done: reload,
        }));
      }
      actions.push(patientForm(ctx, pid, {
        id: 'record-appointment', title: '예약·방문 기록', path: 'appointments', submit: '기록',
        build: () => [
          field('종류', select('kind', [['booking', '예약'], ['visit', '방문']], 'booking')),
          field('일시', h('input', { type: 'datetime-local', name: 'at', required: true }), '병원 시간(한국)'),
          field('메모', h('textarea', { name: 'note', rows: 2, maxlength: 500 }))],
        body: (form) => withoutEmpty({ kind: value(form, 'kind'), at: value(form, 'at') ? `${value(form, 'at').slice(0, 16)}:00${KST}` : '', note: value(form, 'note') }),
        done: reload,
      }));
      actions.push(patientForm(ctx, pid, {
        id: 'pause', title: patient.paused ? '안내 다시 시작' : '안내 일시 중지', path: 'pause',
        submit: patient.paused ? '다시 시작' : '일시 중지',
        build: () => [
          patient.paused ? h('p', { class: 'hint' }, `중지 사유: ${patient.pause_reason || '없음'}`) : h('p', { class: 'hint' }, '중지하는 동안 예정된 안내는 보내지 않습니다.'),
          patient.paused ? null : field('사유', h('input', { type: 'text', name: 'reason', maxlength: 200, autocomplete: 'off' }))].filter(Boolean),
        body: (form) => withoutEmpty({ paused: !patient.paused, reason: patient.paused ? '' : value(form, 'reason') }),
        done: reload,
      }));

      clear(page,
        h('div', { class: 'screen-head' },
          h('h2', { id: 'patient-title', tabindex: '-1', class: 'patient-name' }, `${patient.name}`),
          h('span', { class: 'item-meta' }, patient.chart_no ? h('span', { class: 'meta' }, `차트 ${patient.chart_no}`) : null,
            patient.paused ? h('span', { class: 'badge paused' }, h('span', { class: 'icon', 'aria-hidden': 'true' }, '‖'), ' 안내 중지 중') : null)),
        h('div', { class: 'detail' },
          h('div', { class: 'detail-main' },
            h('section', { class: 'card', 'aria-labelledby': 'contact-title', id: 'contact' },
              h('h2', { id: 'contact-title' }, '연락처·동의'),
              h('dl', { class: 'facts' },
                h('dt', {}, '휴대폰'), h('dd', {}, phone(patient.phone) || '없음'),
                h('dt', {}, '메일'), h('dd', {}, patient.email || '없음'),
                h('dt', {}, '차트번호'), h('dd', {}, patient.chart_no || '없음'),
                Object.entries(CONSENT).map(([key, text]) => [h('dt', {}, text), h('dd', { dataset: { consent: key } }, yes(consents[key]))]))),
            h('section', { class: 'card', 'aria-labelledby': 'booking-title', id: 'bookings' },
              h('h2', { id: 'booking-title' }, '예약·방문'),
              h('dl', { class: 'facts' },
                h('dt', {}, '다음 예약'), h('dd', { id: 'next-booking' }, patient.next_booking_at ? when(patient.next_booking_at) : '없음'),
                h('dt', {}, '최근 방문'), h('dd', { id: 'last-visit' }, patient.last_visit_at ? when(patient.last_visit_at) : '없음'))),
            clinical
              ? h('section', { class: 'card', 'aria-labelledby': 'timeline-title', id: 'timeline-card' },
                h('h2', { id: 'timeline-title' }, '시술·안내·예약 기록'),
                h('p', { class: 'hint' }, staff.role === 'department_staff' ? '우리 부서의 시술과 안내만 보입니다.' : '모든 부서의 시술과 안내입니다.'),
                timeline(ctx, patient, touchpoints),
                h('p', {}, h('a', { href: '#/replies' }, '답변 대기 목록으로')))
              : h('p', { class: 'notice', id: 'reception-note' }, '시술 기록과 상담 내용은 진료과와 고객지원팀만 봅니다. 여기서는 연락처·동의와 예약을 다룹니다.')),
          h('aside', { class: 'detail-actions', id: 'actions', 'aria-labelledby': 'actions-title' },
            h('h2', { id: 'actions-title' }, '기록하기'), actions)));
      const target = focusId && page.querySelector(`#${focusId}`);
      if (target) target.setAttribute('tabindex', '-1');
      (target || page.querySelector('#patient-title')).focus();
    }

    if (params.id) show(params.id);
    else search.input.focus();
    return () => { stopped = true; };
  },
};
