// 보고서: the complaint report (GET /reports/complaints), the recall report per treatment tag
// (GET /reports/recall) and the messages report (GET /reports/messages) for a month or a
// quarter, drawn with Chart.js (vendor/chart.umd.js, loaded on first use by a script tag: the
// CSP's script-src 'self' allows it). Every chart tells its series by pattern, dash and point
// shape as well as by colour, and has a table of its numbers beside it; the page prints as a
// report (@media print). CSV: the same routes with format=csv (UTF-8 with BOM, Korean headers).

import { ApiError } from './api.js';
import { token } from './auth.js';
import { h, clear, announce, field, select, serverNow } from './ui.js';
import { CHANNEL, KIND, MESSAGE_CHANNEL, MESSAGE_STATUS, label } from './labels.js';

const READERS = ['cs_admin', 'department_staff', 'reception', 'qi'];
const RECALL_READERS = ['cs_admin', 'department_staff', 'qi'];
const MESSAGE_READERS = ['cs_admin', 'qi'];
const INK = ['#0b4f8a', '#8a0016', '#1d5e2c', '#6a3f00', '#4b2a82', '#33414e', '#00606b', '#7a2e55'];
const DASHES = [[], [8, 4], [2, 3], [10, 3, 2, 3], [4, 4], [1, 2]];
const POINTS = ['circle', 'triangle', 'rect', 'rectRot', 'star', 'crossRot'];
const CANCEL_REASON = {
  future_booking: '예약 있음', visit_since: '이후 내원', repeat_treatment: '같은 치료 반복',
  patient_paused: '환자 요청 중단', staff: '직원 취소', unknown: '사유 없음',
};

let chartLoading = null;

/** Chart.js, once: a script tag for the vendored UMD build (it defines window.Chart). */
export function loadChart() {
  if (window.Chart) return Promise.resolve(window.Chart);
  if (!chartLoading) {
    chartLoading = new Promise((resolve, reject) => {
      const script = document.createElement('script');
      script.src = new URL('chart.umd.js', window.location.href.split('#')[0]).href;
      script.onload = () => resolve(window.Chart);
      script.onerror = () => { chartLoading = null; reject(new Error('chart.umd.js')); };
      document.head.append(script);
    });
  }
  return chartLoading;
}

/** A fill that tells series apart without colour: stripes, dots, cross-hatch, ... */
function pattern(index) {
  const size = 10;
  const canvas = document.createElement('canvas');
  canvas.width = size;
  canvas.height = size;
  const g = canvas.getContext('2d');
  const ink = INK[index % INK.length];
  g.fillStyle = '#ffffff';
  g.fillRect(0, 0, size, size);
  g.strokeStyle = ink;
  g.fillStyle = ink;
  g.lineWidth = 2;
  switch (index % 6) {
    case 0: g.fillRect(0, 0, size, size); break; // solid
    case 1: g.beginPath(); g.moveTo(0, size); g.lineTo(size, 0); g.stroke(); break; // ／
    case 2: g.beginPath(); g.arc(5, 5, 2, 0, Math.PI * 2); g.fill(); break; // dots
    case 3: g.beginPath(); g.moveTo(0, 0); g.lineTo(size, size); g.moveTo(0, size); g.lineTo(size, 0); g.stroke(); break; // ×
    case 4: g.fillRect(0, 0, size, 3); break; // horizontal bars
    default: g.fillRect(0, 0, 3, size); // vertical bars
  }
  return g.createPattern(canvas, 'repeat');
}

export function currentPeriod(kind, now = serverNow()) {
  const seoul = new Date(now + 9 * 3600000); // Asia/Seoul has no DST
  const year = seoul.getUTCFullYear();
  const month = seoul.getUTCMonth() + 1;
  return kind === 'quarter' ? `${year}-Q${Math.ceil(month / 3)}` : `${year}-${String(month).padStart(2, '0')}`;
}

function periodText(period) {
  const [year, rest] = period.split('-');
  return rest.startsWith('Q') ? `${year}년 ${rest.slice(1)}분기` : `${year}년 ${Number(rest)}월`;
}

function number(value, suffix = '') {
  if (value === null || value === undefined) return '—';
  return `${Number(value).toLocaleString('ko-KR')}${suffix}`;
}

function changeText(compared, suffix = '') {
  if (!compared || compared.difference === null || compared.difference === undefined) return '이전 기간 자료 없음';
  const d = compared.difference;
  const arrow = d > 0 ? '▲' : d < 0 ? '▼' : '＝';
  const pct = compared.percent === null || compared.percent === undefined ? '' : ` (${compared.percent > 0 ? '+' : ''}${compared.percent}%)`;
  return `이전 기간 ${number(compared.before, suffix)} 대비 ${arrow} ${number(Math.abs(d), suffix)}${pct}`;
}

/** A chart and the table of its numbers, side by side (the table is what print and screen readers read). */
function figure(id, title, labels, series, { type = 'bar', horizontal = false, stacked = false, suffix = '' } = {}) {
  const canvas = h('canvas', { id: `${id}-canvas`, role: 'img', 'aria-label': `${title} 그래프: 숫자는 옆 표에 있습니다` });
  const table = h('table', { class: 'data-table', id: `${id}-table` },
    h('caption', {}, title),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, '항목'),
      series.map((s, i) => h('th', { scope: 'col' }, h('span', { class: `key key-${i % 6}`, 'aria-hidden': 'true' }), s.label)))),
    h('tbody', {}, labels.length
      ? labels.map((name, row) => h('tr', {}, h('th', { scope: 'row' }, name),
        series.map((s) => h('td', { class: 'num' }, number(s.data[row], suffix)))))
      : h('tr', {}, h('td', { colspan: series.length + 1, class: 'empty' }, '이 기간의 자료가 없습니다'))));
  const box = h('figure', { class: 'chart-figure', id },
    h('div', { class: 'chart-box' }, canvas),
    h('div', { class: 'chart-table' }, table));
  box.draw = (Chart) => new Chart(canvas, {
    type,
    data: {
      labels,
      datasets: series.map((s, i) => ({
        label: s.label,
        data: s.data,
        type: s.type || type,
        backgroundColor: (s.type || type) === 'line' ? '#ffffff' : pattern(i),
        borderColor: INK[i % INK.length],
        borderWidth: 2,
        borderDash: (s.type || type) === 'line' ? DASHES[i % DASHES.length] : [],
        pointStyle: POINTS[i % POINTS.length],
        pointRadius: 5,
        fill: false,
        tension: 0,
        order: s.order ?? i,
      })),
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      indexAxis: horizontal ? 'y' : 'x',
      scales: {
        x: { stacked, beginAtZero: true, ticks: { color: '#1b1f24', precision: 0 }, grid: { color: '#d0d7de' } },
        y: { stacked, beginAtZero: true, ticks: { color: '#1b1f24', precision: 0 }, grid: { color: '#d0d7de' } },
      },
      plugins: {
        legend: { labels: { usePointStyle: true, color: '#1b1f24', font: { size: 13 } } },
        tooltip: { enabled: true },
      },
    },
  });
  return box;
}

function pairs(map, names) {
  const entries = Object.entries(map || {}).sort((a, b) => b[1] - a[1]);
  return [entries.map(([k]) => names(k)), entries.map(([, v]) => v)];
}

function stat(id, name, value, note) {
  return h('div', { class: 'stat', id },
    h('dt', {}, name), h('dd', {}, h('span', { class: 'stat-value' }, value), note ? h('span', { class: 'stat-note' }, note) : null));
}

function complaintSection(report, ctx) {
  const { config } = ctx;
  const c = report.compared;
  const category = (k) => config.categories[k] || k;
  const [kindLabels, kindData] = pairs(report.by_kind, (k) => label(KIND, k));
  const [catLabels, catData] = pairs(report.by_category, category);
  const [chLabels, chData] = pairs(report.by_channel, (k) => label(CHANNEL, k));
  const [depLabels, depData] = pairs(report.by_department, (k) => ctx.departmentName(k));
  const trend = report.trend || [];
  const figures = [
    figure('chart-trend', '12개월 추이', trend.map((m) => m.month), [
      { label: '접수', data: trend.map((m) => m.total) },
      { label: '해결', data: trend.map((m) => m.resolved) },
      { label: '상향 보고', data: trend.map((m) => m.escalated) },
    ], { type: 'line' }),
    figure('chart-kind', '유형별', kindLabels, [{ label: '건수', data: kindData }]),
    figure('chart-category', '분류별', catLabels, [{ label: '건수', data: catData }], { horizontal: true }),
    figure('chart-channel', '접수 경로별', chLabels, [{ label: '건수', data: chData }]),
    figure('chart-department', '부서별', depLabels, [{ label: '건수', data: depData }], { horizontal: true }),
  ];
  const section = h('section', { class: 'card report-section', id: 'report-complaints', 'aria-labelledby': 'complaints-title' },
    h('div', { class: 'section-head' },
      h('h2', { id: 'complaints-title' }, `민원 보고서 · ${periodText(report.period)}`),
      csvButton(ctx, 'reports/complaints', report.period, `민원보고서-${report.period}.csv`, 'csv-complaints')),
    h('dl', { class: 'stats', id: 'complaint-stats' },
      stat('stat-total', '접수 건수', number(report.total, '건'), changeText(c.total, '건')),
      stat('stat-ack', '기한 내 접수확인', number(report.acknowledged_within_sla_percent, '%'),
        `${number(report.acknowledged_within_sla)} / ${number(report.total)}건 · ${changeText(c.acknowledged_within_sla_percent, '%p')}`),
      stat('stat-resolve', '기한 내 해결', number(report.resolved_within_sla_percent, '%'),
        `${number(report.resolved_within_sla)} / ${number(report.resolved)}건 · ${changeText(c.resolved_within_sla_percent, '%p')}`),
      stat('stat-median-ack', '접수확인까지(중앙값)', number(report.median_hours_to_acknowledge, '시간'), changeText(c.median_hours_to_acknowledge, '시간')),
      stat('stat-median-resolve', '해결까지(중앙값)', number(report.median_hours_to_resolve, '시간'), changeText(c.median_hours_to_resolve, '시간')),
      stat('stat-escalated', '상향 보고', number(report.escalated, '건'), changeText(c.escalated, '건')),
      stat('stat-survey', '만족도 평균(5점)', number(report.satisfaction_average, '점'),
        `응답 ${number(report.survey_answers)}건 · 응답률 ${number(report.survey_answer_rate_percent, '%')}`)),
    figures,
    h('div', { class: 'report-phrases' },
      h('table', { class: 'data-table', id: 'top-phrases' },
        h('caption', {}, '자주 나온 표현(분류기가 찾은 말)'),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, '순위'), h('th', { scope: 'col' }, '표현'), h('th', { scope: 'col' }, '민원 수'))),
        h('tbody', {}, report.top_phrases.length
          ? report.top_phrases.map((p, i) => h('tr', {}, h('td', { class: 'num' }, String(i + 1)), h('th', { scope: 'row' }, p.phrase), h('td', { class: 'num' }, number(p.count, '건'))))
          : h('tr', {}, h('td', { colspan: 3, class: 'empty' }, '이 기간에 찾은 표현이 없습니다'))))));
  return { section, figures };
}

function recallSection(report, ctx) {
  const names = Object.fromEntries((ctx.config.treatment_tags || []).map((t) => [t.id, t.name]));
  const tags = report.tags;
  const tagNames = tags.map((t) => names[t.tag] || t.tag);
  const band = report.band;
  const reasons = {};
  for (const t of tags) for (const [k, v] of Object.entries(t.cancelled_by_reason)) reasons[k] = (reasons[k] || 0) + v;
  const [reasonLabels, reasonData] = pairs(reasons, (k) => CANCEL_REASON[k] || k);
  const figures = [
    figure('chart-recall', '치료 태그별 리콜', tagNames, [
      { label: '대상', data: tags.map((t) => t.due) },
      { label: '발송', data: tags.map((t) => t.sent) },
      { label: '취소', data: tags.map((t) => t.cancelled) },
      { label: '답장', data: tags.map((t) => t.replies) },
      { label: '전환(내원)', data: tags.map((t) => t.converted) },
    ]),
    figure('chart-return', `재내원율(%) · 치과 평균 ${band.typical_low}~${band.typical_high}%, 최고 ${band.best}%+`, tagNames, [
      { label: '우리 병원', data: tags.map((t) => t.return_rate_percent) },
      { label: `평균 하한 ${band.typical_low}%`, data: tags.map(() => band.typical_low), type: 'line' },
      { label: `평균 상한 ${band.typical_high}%`, data: tags.map(() => band.typical_high), type: 'line' },
      { label: `최고 ${band.best}%`, data: tags.map(() => band.best), type: 'line' },
    ], { suffix: '%' }),
    figure('chart-cancel', '취소 사유', reasonLabels, [{ label: '건수', data: reasonData }], { horizontal: true }),
  ];
  const total = report.total;
  const position = { best: '최고 수준', above_typical: '평균보다 높음', typical: '평균 범위', below_typical: '평균보다 낮음' };
  const section = h('section', { class: 'card report-section', id: 'report-recall', 'aria-labelledby': 'recall-title' },
    h('div', { class: 'section-head' },
      h('h2', { id: 'recall-title' }, `리콜 보고서 · ${periodText(report.period)}`),
      csvButton(ctx, 'reports/recall', report.period, `리콜보고서-${report.period}.csv`, 'csv-recall')),
    h('dl', { class: 'stats', id: 'recall-stats' },
      stat('stat-recall-due', '대상', number(total.due, '건')),
      stat('stat-recall-sent', '발송', number(total.sent, '건')),
      stat('stat-recall-converted', '전환(내원)', number(total.converted, '건')),
      stat('stat-recall-rate', '재내원율', number(total.return_rate_percent, '%'),
        `${position[total.band_position] || '자료 없음'} · 치과 평균 ${band.typical_low}~${band.typical_high}%, 최고 ${band.best}%+`)),
    figures);
  return { section, figures };
}

function messageSection(report, ctx) {
  const channels = Object.keys(report.by_channel);
  const shown = ['sent', 'delivered', 'fallback_sent', 'failed'];
  const figures = [
    figure('chart-messages', '채널별 메시지', channels.map((c) => label(MESSAGE_CHANNEL, c)),
      shown.map((s) => ({ label: label(MESSAGE_STATUS, s), data: channels.map((c) => report.by_channel[c][s]) }))),
  ];
  const t = report.totals;
  const section = h('section', { class: 'card report-section', id: 'report-messages', 'aria-labelledby': 'messages-title' },
    h('div', { class: 'section-head' },
      h('h2', { id: 'messages-title' }, `메시지 보고서 · ${periodText(report.period)}`),
      csvButton(ctx, 'reports/messages', report.period, `메시지보고서-${report.period}.csv`, 'csv-messages')),
    h('dl', { class: 'stats', id: 'message-stats' },
      stat('stat-msg-sent', '발송', number(t.sent, '건')),
      stat('stat-msg-delivered', '전달', number(t.delivered, '건'), `전달률 ${number(report.delivered_percent, '%')}`),
      stat('stat-msg-fallback', '문자로 대체 전달', number(t.fallback_sent, '건')),
      stat('stat-msg-failed', '실패', number(t.failed, '건'))),
    figures);
  return { section, figures };
}

function csvButton(ctx, path, period, filename, id) {
  const button = h('button', { type: 'button', class: 'secondary no-print', id }, 'CSV 내려받기');
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      const bearer = await token();
      const url = new URL(`../${path}`, window.location.href.split('#')[0]);
      url.searchParams.set('period', period);
      url.searchParams.set('format', 'csv');
      const answer = await fetch(url, { headers: { Authorization: `Bearer ${bearer}`, Accept: 'text/csv' } });
      if (!answer.ok) throw new ApiError(answer.status, await answer.json().catch(() => null));
      const blob = await answer.blob();
      const link = h('a', { href: URL.createObjectURL(blob), download: filename, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      announce(`${filename} 파일을 내려받았습니다`);
    } catch (error) {
      announce(error instanceof ApiError ? error.text() : 'CSV를 내려받지 못했습니다');
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

export const screen = {
  id: 'reports',
  title: '보고서',
  nav: true,
  roles: READERS,
  match: (path) => {
    if (path === 'reports') return {};
    const found = /^reports\/(\d{4}-(?:0[1-9]|1[0-2]|Q[1-4]))$/.exec(path);
    return found ? { period: found[1] } : null;
  },
  render(main, params, ctx) {
    const { staff } = ctx;
    const period = params.period || currentPeriod('month');
    const quarterly = period.includes('Q');
    const [year, rest] = period.split('-');
    const kind = select('kind', [['month', '월간'], ['quarter', '분기']], quarterly ? 'quarter' : 'month');
    const yearInput = h('input', { name: 'year', type: 'number', min: '2000', max: '2100', value: year, inputmode: 'numeric', required: true });
    const monthSelect = select('month', Array.from({ length: 12 }, (_, i) => [String(i + 1).padStart(2, '0'), `${i + 1}월`]), quarterly ? '01' : rest);
    const quarterSelect = select('quarter', [['Q1', '1분기'], ['Q2', '2분기'], ['Q3', '3분기'], ['Q4', '4분기']], quarterly ? rest : 'Q1');
    const monthField = field('월', monthSelect);
    const quarterField = field('분기', quarterSelect);
    const sync = () => { monthField.hidden = kind.value !== 'month'; quarterField.hidden = kind.value !== 'quarter'; };
    kind.addEventListener('change', sync);
    const form = h('form', { class: 'filters no-print', id: 'period-form', 'aria-label': '보고서 기간' },
      field('기간 단위', kind), field('연도', yearInput), monthField, quarterField,
      h('div', { class: 'filter-actions' }, h('button', { type: 'submit', class: 'primary' }, '보기')),
      h('div', { class: 'filter-actions' }, h('button', { type: 'button', id: 'print', onclick: () => window.print() }, '인쇄')));
    sync();
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const chosen = kind.value === 'quarter' ? `${yearInput.value}-${quarterSelect.value}` : `${yearInput.value}-${monthSelect.value}`;
      ctx.go(`#/reports/${chosen}`);
    });
    const status = h('p', { class: 'list-status', id: 'report-status', role: 'status' }, '불러오는 중…');
    const body = h('div', { id: 'report-body' });
    const scope = staff.department && staff.role !== 'cs_admin' && staff.role !== 'qi'
      ? ` · ${ctx.departmentName(staff.department)}` : '';
    clear(main,
      h('div', { class: 'screen-head' },
        h('h1', { id: 'screen-title', tabindex: '-1' }, `보고서 · ${periodText(period)}${scope}`), status),
      form, body);

    let charts = [];
    let gone = false;
    (async () => {
      const query = { period };
      const wanted = [
        ctx.api('reports/complaints', { query }).then((r) => complaintSection(r, ctx)),
        RECALL_READERS.includes(staff.role) ? ctx.api('reports/recall', { query }).then((r) => recallSection(r, ctx)) : null,
        MESSAGE_READERS.includes(staff.role) ? ctx.api('reports/messages', { query }).then((r) => messageSection(r, ctx)) : null,
      ].filter(Boolean);
      let parts;
      try {
        parts = await Promise.all(wanted);
      } catch (error) {
        clear(status, h('span', { class: 'form-error', role: 'alert' }, error instanceof ApiError ? error.text() : '보고서를 불러오지 못했습니다'));
        return;
      }
      if (gone) return;
      clear(body, parts.map((p) => p.section));
      let Chart = null;
      try {
        Chart = await loadChart();
      } catch {
        status.textContent = '그래프를 불러오지 못했습니다: 표의 숫자를 보세요';
        return;
      }
      if (gone) return;
      charts = parts.flatMap((p) => p.figures.map((f) => f.draw(Chart)));
      main.dataset.charts = String(charts.length);
      status.textContent = `${periodText(period)} 보고서`;
      announce(`${periodText(period)} 보고서를 불러왔습니다`);
    })();
    const beforePrint = () => { for (const chart of charts) chart.resize(640, 300); };
    const afterPrint = () => { for (const chart of charts) chart.resize(); };
    window.addEventListener('beforeprint', beforePrint);
    window.addEventListener('afterprint', afterPrint);
    return () => {
      gone = true;
      window.removeEventListener('beforeprint', beforePrint);
      window.removeEventListener('afterprint', afterPrint);
      for (const chart of charts) chart.destroy();
    };
  },
};
