// 캠페인: build a segment by treatment history with a live count (POST /segments/count), see
// its patients (POST /segments/list), preview the message exactly as the patient will see it and
// who the rules hold or skip (POST /campaigns/preview: the sender's own rendering and rules),
// then schedule it (POST /campaigns, CS admin only) and watch it (GET /campaigns/{id}).
// Department staff may count, list and preview their department's tags; the API says the same.

import { ApiError } from './api.js';
import { h, clear, announce, field, select, showError, clearErrors, busy, when } from './ui.js';

const COUNT_DELAY_MS = 400;
const POLL_MS = 5000;
const RECENT_KEY = 'sotong.console.campaigns';

// What each rule of the preview means, in the hospital's words (action, rule) -> text
const RULES = {
  'send:send': { text: '발송', icon: '↗', hint: '조건을 모두 지켜 바로 보냅니다' },
  'hold:night_advertising': { text: '아침까지 보류 (야간 광고)', icon: '‖', hint: '21:00–08:00 광고는 야간 수신 동의가 있어야 보냅니다 (정보통신망법 §50)' },
  'hold:quiet_hours': { text: '아침까지 보류 (조용한 시간)', icon: '‖', hint: '병원이 정한 조용한 시간이 끝나면 보냅니다' },
  'hold:not_before': { text: '예약 시각까지 보류', icon: '‖', hint: '' },
  'skip:no_marketing_consent': { text: '제외: 광고 수신 동의 없음', icon: '⊘', hint: '광고는 사전 동의한 분께만 보냅니다' },
  'skip:paused': { text: '제외: 안내 중지한 환자', icon: '⊘', hint: '' },
  'skip:frequency_cap': { text: '제외: 최근 광고를 받음 (횟수 제한)', icon: '⊘', hint: '' },
  'suppress:opted_out': { text: '제외: 수신 거부 (080)', icon: '⊘', hint: '080 무료 수신 거부를 한 번호입니다' },
  'suppress:no_contact_consent': { text: '제외: 연락 동의 없음', icon: '⊘', hint: '' },
  'suppress:no_marketing_consent': { text: '제외: 광고 수신 동의 없음', icon: '⊘', hint: '' },
  'fail:no_contact': { text: '보낼 수 없음: 연락처 없음', icon: '✖', hint: '' },
  'fail:invalid_template': { text: '보낼 수 없음: 템플릿 오류', icon: '✖', hint: '' },
};

const STATUS = {
  planned: { text: '예약됨', icon: '◔' },
  running: { text: '발송 중', icon: '▶' },
  done: { text: '완료', icon: '✔' },
  cancelled: { text: '취소됨', icon: '■' },
};

const RESULT = {
  queued: '대기', held: '보류', calling: '보내는 중', retry: '재시도 대기', uncertain: '확인 필요',
  sent: '발송됨', delivered: '전달됨', fallback_sent: '대체 전달', failed: '실패', suppressed: '보내지 않음',
};

function ruleOf(row) {
  return RULES[`${row.action}:${row.rule}`] || { text: `${row.action}: ${row.rule}`, icon: '•', hint: '' };
}

/** A result reason of GET /campaigns/{id} (`suppressed: opted_out`) in the hospital's words. */
function reasonText(reason) {
  const [status, why] = String(reason).split(':').map((part) => part.trim());
  const action = { suppressed: 'suppress', held: 'hold', failed: 'fail' }[status];
  const known = action && RULES[`${action}:${why}`];
  return known ? known.text : `${RESULT[status] || status}: ${why || ''}`;
}

function recent() {
  try { return JSON.parse(window.sessionStorage.getItem(RECENT_KEY) || '[]'); } catch { return []; }
}

function remember(campaign) {
  const list = recent().filter((c) => c.id !== campaign.id);
  list.unshift({ id: campaign.id, name: campaign.name, send_on: campaign.send_on });
  window.sessionStorage.setItem(RECENT_KEY, JSON.stringify(list.slice(0, 10)));
}

function today() {
  return new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Seoul' }).format(new Date());
}

function newKey() {
  const bytes = new Uint8Array(12);
  window.crypto.getRandomValues(bytes);
  return `console-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

function number(n) {
  return new Intl.NumberFormat('ko-KR').format(n || 0);
}

/** The segment the form describes (the API's `Segment`), empty values left out. */
function segmentOf(form) {
  const value = (name) => form.elements.namedItem(name).value.trim();
  const segment = { tag: value('tag') };
  for (const name of ['last_treatment_after', 'last_treatment_before', 'no_visit_since']) {
    if (value(name)) segment[name] = value(name);
  }
  if (form.elements.namedItem('marketing_consent_only').checked) segment.marketing_consent_only = true;
  return segment;
}

/** A marketing template as staff pick it: its first line without the parts every ad has. */
function templateLabel(template) {
  const text = String(template.excerpt || '').replace(/^\(광고\)\s*/, '').replace(/\[#\{hospital\}\]\s*/, '')
    .replace(/#\{name\}/g, '○○').replace(/#\{[a-z_]+\}/g, '…');
  return `${text} (${template.id})`;
}

function builder(main, ctx) {
  const { staff, config } = ctx;
  const admin = staff.role === 'cs_admin';
  const tags = (config.treatment_tags || []).filter((t) => admin || t.department === staff.department);
  const templates = config.marketing_templates || [];
  if (!tags.length) {
    clear(main, h('section', { class: 'card' }, h('h1', { id: 'screen-title', tabindex: '-1' }, '캠페인'),
      h('p', {}, '내 부서의 치료 태그가 없습니다.')));
    return null;
  }
  const count = h('p', { class: 'segment-count', id: 'segment-count', 'aria-live': 'polite' }, '대상 계산 중…');
  const form = h('form', { class: 'card campaign-form', id: 'campaign-form', novalidate: true, 'aria-labelledby': 'segment-title' },
    h('h2', { id: 'segment-title' }, '1. 대상 고르기'),
    h('div', { class: 'row' },
      field('치료 태그', select('tag', tags.map((t) => [t.id, `${t.name} · ${ctx.departmentName(t.department)}`]), tags[0].id)),
      field('마지막 치료일(부터)', h('input', { type: 'date', name: 'last_treatment_after' })),
      field('마지막 치료일(이 날짜 전)', h('input', { type: 'date', name: 'last_treatment_before' })),
      field('이 날 이후 내원 없음', h('input', { type: 'date', name: 'no_visit_since' }))),
    h('div', { class: 'check' }, h('input', { type: 'checkbox', name: 'marketing_consent_only', id: 'f-consent-only' }),
      h('label', { for: 'f-consent-only' }, '광고 수신에 동의한 분만 세기')),
    count,
    h('div', { class: 'form-actions' }, h('button', { type: 'button', class: 'secondary', id: 'show-members' }, '대상자 보기')),
    h('div', { id: 'members' }),
    h('h2', { id: 'message-title' }, '2. 메시지'),
    h('div', { class: 'row' },
      field('광고 템플릿', select('template_id', templates.map((t) => [t.id, templateLabel(t)]), templates[0] && templates[0].id)),
      field('발송일 (오늘이면 지금부터)', h('input', { type: 'date', name: 'send_on', value: today(), min: today() })),
      admin ? field('캠페인 이름', h('input', { type: 'text', name: 'name', maxlength: 100, value: '' })) : null),
    h('div', { class: 'form-actions' },
      h('button', { type: 'submit', class: 'secondary', id: 'preview' }, '미리 보기'),
      admin ? h('button', { type: 'button', class: 'primary', id: 'schedule', disabled: true }, '발송 예약') : null),
    admin ? null : h('p', { class: 'hint', id: 'admin-only' }, '발송 예약과 취소는 고객지원팀 관리자만 할 수 있습니다. 대상 수와 미리 보기는 내 부서 태그로 볼 수 있습니다.'));
  const preview = h('section', { class: 'card', id: 'campaign-preview', 'aria-labelledby': 'preview-title', hidden: true });
  const mine = recent();
  clear(main,
    h('div', { class: 'screen-head' }, h('h1', { id: 'screen-title', tabindex: '-1' }, '캠페인'),
      h('span', { class: 'hint' }, '치료 이력으로 대상을 고르고, 환자가 받을 문자 그대로 미리 본 뒤 예약합니다')),
    mine.length ? h('nav', { class: 'card recent', 'aria-label': '최근 캠페인' }, h('h2', {}, '최근 캠페인'),
      h('ul', {}, mine.map((c) => h('li', {}, h('a', { href: `#/campaigns/${c.id}` }, c.name || c.id), ` · ${c.send_on}`)))) : null,
    form, preview);

  let timer = null;
  let asked = 0;
  let previewed = null; // the request the preview shows; scheduling sends exactly that
  const scheduleButton = form.querySelector('#schedule');

  async function recount() {
    const mine = ++asked;
    count.textContent = '대상 계산 중…';
    try {
      const answer = await ctx.api('segments/count', { method: 'POST', body: segmentOf(form) });
      if (mine !== asked) return;
      clearErrors(form);
      count.textContent = `대상 ${number(answer.count)}명`;
    } catch (error) {
      if (mine !== asked) return;
      count.textContent = '대상 수를 셀 수 없습니다';
      showError(form, error instanceof ApiError ? error : new ApiError(0, {}));
    }
  }

  function changed(event) {
    if (event.target.name === 'name') return; // the name changes nothing the preview shows
    stale();
    if (['template_id', 'send_on'].includes(event.target.name)) return; // the count stays
    asked += 1; // an answer still on its way is for the old segment
    count.textContent = '대상 계산 중…';
    window.clearTimeout(timer);
    timer = window.setTimeout(recount, COUNT_DELAY_MS);
  }

  function stale() {
    previewed = null;
    if (scheduleButton) scheduleButton.disabled = true;
    if (!preview.hidden) preview.classList.add('stale');
  }

  form.addEventListener('input', changed);
  form.addEventListener('change', changed);

  form.querySelector('#show-members').addEventListener('click', async () => {
    const box = form.querySelector('#members');
    try {
      const answer = await ctx.api('segments/list', { method: 'POST', body: { ...segmentOf(form), limit: 20 } });
      clear(box, h('table', { class: 'messages members' },
        h('caption', { class: 'hint' }, `처음 ${answer.patients.length}명 (전체 ${number(answer.count)}명, 마지막 치료가 오래된 순)`),
        h('thead', {}, h('tr', {}, ['이름', '전화', '마지막 치료', '광고 동의', '안내 중지'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, answer.patients.map((p) => h('tr', {},
          h('td', {}, p.name || '—'), h('td', {}, p.phone || '—'), h('td', {}, p.last_treatment),
          h('td', {}, p.marketing_consent ? '✔ 동의' : '✖ 없음'), h('td', {}, p.paused ? '‖ 중지' : '—'))))));
    } catch (error) {
      showError(form, error instanceof ApiError ? error : new ApiError(0, {}));
    }
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = { segment: segmentOf(form), template_id: form.elements.namedItem('template_id').value };
    const day = form.elements.namedItem('send_on').value;
    if (day) body.send_on = day;
    busy(form, true);
    try {
      const answer = await ctx.api('campaigns/preview', { method: 'POST', body });
      previewed = body;
      drawPreview(answer);
      if (scheduleButton) scheduleButton.disabled = false;
      announce(`미리 보기: ${number(answer.totals.send)}명 발송, ${number(answer.totals.hold)}명 보류, ${number(answer.totals.skip + answer.totals.suppress)}명 제외`);
    } catch (error) {
      showError(form, error instanceof ApiError ? error : new ApiError(0, {}));
    } finally {
      busy(form, false);
      if (scheduleButton) scheduleButton.disabled = !previewed;
    }
  });

  if (scheduleButton) {
    scheduleButton.addEventListener('click', async () => {
      if (!previewed) return;
      clearErrors(form);
      const name = form.elements.namedItem('name').value.trim();
      busy(form, true);
      try {
        const campaign = await ctx.api('campaigns', {
          method: 'POST',
          body: { ...previewed, name },
          headers: { 'Idempotency-Key': newKey() },
        });
        remember(campaign);
        announce(`캠페인을 예약했습니다: ${campaign.name}`);
        ctx.go(`#/campaigns/${campaign.id}`);
      } catch (error) {
        busy(form, false);
        showError(form, error instanceof ApiError ? error : new ApiError(0, {}));
      }
    });
  }

  function drawPreview(answer) {
    preview.hidden = false;
    preview.classList.remove('stale');
    const message = answer.message;
    clear(preview,
      h('h2', { id: 'preview-title', tabindex: '-1' }, '3. 미리 보기'),
      h('div', { class: 'preview-grid' },
        h('figure', { class: 'phone' },
          h('figcaption', { class: 'hint' }, `환자가 받는 ${message.channel === 'email' ? '메일' : '문자'} (${message.characters}자${message.sample === 'example' ? ', 예시 이름' : ''})`),
          message.subject ? h('p', { class: 'bubble-subject' }, message.subject) : null,
          h('p', { class: 'bubble', id: 'preview-text' }, message.text)),
        h('div', {},
          h('p', { id: 'preview-summary' }, h('strong', {}, `대상 ${number(answer.segment_count)}명`),
            ` · ${when(answer.evaluated_at)}에 보낸다면 (발송이 시작되는 시각)`,
            answer.counted_all ? '' : ` · 처음 ${number(answer.evaluated)}명만 셌습니다`),
          h('table', { class: 'messages rules', id: 'preview-rules' },
            h('caption', { class: 'visually-hidden' }, '규칙별 인원'),
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, '처리'), h('th', { scope: 'col', class: 'num' }, '인원'), h('th', { scope: 'col' }, '설명'))),
            h('tbody', {}, answer.rules.length ? answer.rules.map((row) => {
              const rule = ruleOf(row);
              return h('tr', { dataset: { rule: `${row.action}:${row.rule}` }, class: `rule-${row.action}` },
                h('td', {}, h('span', { class: 'icon', 'aria-hidden': 'true' }, rule.icon), ' ', rule.text),
                h('td', { class: 'num' }, `${number(row.count)}명`),
                h('td', { class: 'hint' }, row.release_at ? `${when(row.release_at)}에 보냄` : rule.hint));
            }) : h('tr', {}, h('td', { colspan: 3 }, '대상이 없습니다.')))))));
  }

  recount();
  return () => window.clearTimeout(timer);
}

function progress(main, params, ctx) {
  const admin = ctx.staff.role === 'cs_admin';
  const body = h('div', { id: 'campaign-detail' }, h('p', { class: 'loading' }, '불러오는 중…'));
  clear(main,
    h('p', { class: 'back' }, h('a', { href: '#/campaigns' }, '← 캠페인')),
    h('div', { class: 'screen-head' }, h('h1', { id: 'screen-title', tabindex: '-1' }, '캠페인 진행')),
    body);
  let stopped = false;
  let poll = null;

  function draw(c) {
    const status = STATUS[c.status] || { text: c.status, icon: '•' };
    const skipped = c.skipped_no_consent + c.skipped_paused + c.skipped_frequency + c.skipped_erased;
    const results = c.results || {};
    const finished = results.finished || 0;
    const share = c.queued ? Math.round((finished / c.queued) * 100) : 0;
    const cancel = admin && (c.status === 'planned' || c.status === 'running')
      ? h('button', { type: 'button', class: 'secondary', id: 'cancel-campaign' }, '발송 중지') : null;
    if (cancel) {
      cancel.addEventListener('click', async () => {
        cancel.disabled = true;
        try {
          draw(await ctx.api(`campaigns/${c.id}/cancel`, { method: 'POST' }));
          announce('캠페인을 중지했습니다.');
        } catch (error) {
          cancel.disabled = false;
          cancel.after(h('p', { class: 'form-error', role: 'alert' }, error instanceof ApiError ? error.text() : String(error)));
        }
      });
    }
    clear(body,
      h('section', { class: 'card', 'aria-labelledby': 'campaign-name' },
        h('h2', { id: 'campaign-name' }, c.name),
        h('p', {}, h('span', { class: `badge campaign-${c.status}`, id: 'campaign-status' },
          h('span', { class: 'icon', 'aria-hidden': 'true' }, status.icon), ' ', status.text),
        ` · 발송일 ${c.send_on} · 템플릿 ${c.template} · 예약 ${c.created_by} (${when(c.created_at)})`),
        h('dl', { class: 'facts', id: 'campaign-counts' },
          h('dt', {}, '확인한 대상'), h('dd', {}, `${number(c.evaluated)}명`),
          h('dt', {}, '발송 대기열에 넣음'), h('dd', { id: 'campaign-queued' }, `${number(c.queued)}건`),
          h('dt', {}, '제외'), h('dd', {}, `${number(skipped)}명 (광고 동의 없음 ${c.skipped_no_consent}, 안내 중지 ${c.skipped_paused}, 횟수 제한 ${c.skipped_frequency}, 삭제됨 ${c.skipped_erased})`),
          h('dt', {}, '발송 완료'), h('dd', {}, `${number(finished)}건`)),
        h('label', { for: 'campaign-progress', class: 'progress-label' }, `발송 진행 ${share}%`),
        h('progress', { id: 'campaign-progress', max: 100, value: share }, `${share}%`),
        cancel),
      h('section', { class: 'card', 'aria-labelledby': 'results-title' },
        h('h2', { id: 'results-title' }, '결과'),
        h('table', { class: 'messages', id: 'campaign-results' },
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, '상태'), h('th', { scope: 'col', class: 'num' }, '건수'))),
          h('tbody', {},
            Object.entries(results.by_status || {}).map(([name, n]) => h('tr', {}, h('td', {}, RESULT[name] || name), h('td', { class: 'num' }, number(n)))),
            results.awaiting_sender ? h('tr', {}, h('td', {}, '발송기 대기'), h('td', { class: 'num' }, number(results.awaiting_sender))) : null,
            !Object.keys(results.by_status || {}).length && !results.awaiting_sender
              ? h('tr', {}, h('td', { colspan: 2 }, c.status === 'planned' ? '1분 안에 발송을 시작합니다.' : '아직 결과가 없습니다.')) : null)),
        Object.keys(results.reasons || {}).length ? h('ul', { class: 'hint' },
          Object.entries(results.reasons).map(([reason, n]) => h('li', {}, `${reasonText(reason)}: ${n}건`))) : null));
    if (c.status === 'done' || c.status === 'cancelled') {
      if (results.complete || c.status === 'cancelled') window.clearInterval(poll);
    }
  }

  async function load() {
    try {
      const campaign = await ctx.api(`campaigns/${params.id}`);
      if (!stopped) draw(campaign);
    } catch (error) {
      if (stopped) return;
      window.clearInterval(poll);
      clear(body, h('p', { class: 'form-error', role: 'alert' },
        error instanceof ApiError && error.status === 404 ? '캠페인 없음 또는 권한 없음' : (error instanceof ApiError ? error.text() : String(error))));
    }
  }
  load();
  poll = window.setInterval(load, POLL_MS);
  return () => { stopped = true; window.clearInterval(poll); };
}

export const screen = {
  id: 'campaigns',
  title: '캠페인',
  nav: true,
  roles: ['cs_admin', 'department_staff'],
  match: (path) => {
    if (path === 'campaigns') return {};
    const found = /^campaigns\/(m[0-9a-f]{24})$/.exec(path);
    return found ? { id: found[1] } : null;
  },
  render(main, params, ctx) {
    return params.id ? progress(main, params, ctx) : builder(main, ctx);
  },
};
