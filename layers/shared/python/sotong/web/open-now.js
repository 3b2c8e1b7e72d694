/* 지금 진료 가능한 곳: asks ../network/open and lists who is open, with phone numbers. */
(function () {
  'use strict';
  var DAYS = ['일', '월', '화', '수', '목', '금', '토'];
  var KINDS = {clinic: '의원', hospital: '병원', pharmacy: '약국'};
  var form = document.getElementById('search');
  var problem = document.getElementById('problem');
  var whenFields = document.getElementById('when-fields');
  var dateInput = document.getElementById('date');
  var timeInput = document.getElementById('time');
  var kindInput = document.getElementById('kind');
  var submit = document.getElementById('submit');
  var result = document.getElementById('result');

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function pad(n) { return (n < 10 ? '0' : '') + n; }

  function seoulParts(iso) {
    // "2027-02-07T21:00:00+09:00": the answer's local time, as written
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(iso);
    var d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3]));
    return {month: +m[2], day: +m[3], weekday: DAYS[d.getUTCDay()], time: m[4] + ':' + m[5]};
  }

  function later() { return document.getElementById('when-later').checked; }

  function showWhen() {
    whenFields.hidden = !later();
    if (later() && !dateInput.value) {
      var now = new Date();
      dateInput.value = now.getFullYear() + '-' + pad(now.getMonth() + 1) + '-' + pad(now.getDate());
    }
  }

  function setError(input, id, message) {
    document.getElementById(id).textContent = message || '';
    if (message) { input.setAttribute('aria-invalid', 'true'); } else { input.removeAttribute('aria-invalid'); }
  }

  function wanted() {
    setError(dateInput, 'date-error', '');
    setError(timeInput, 'time-error', '');
    if (!later()) { return {ok: true, at: null}; }
    var bad = false;
    if (!/^\d{4}-\d{2}-\d{2}$/.test(dateInput.value)) {
      setError(dateInput, 'date-error', '날짜를 골라 주세요');
      bad = true;
    }
    var t = timeInput.value.trim().replace(/^(\d{1,2})$/, '$1:00').replace(/^(\d):/, '0$1:');
    if (!/^([01]\d|2[0-3]):[0-5]\d$/.test(t)) {
      setError(timeInput, 'time-error', '시간을 21:00처럼 적어 주세요');
      bad = true;
    } else {
      timeInput.value = t;
    }
    if (bad) { return {ok: false}; }
    return {ok: true, at: dateInput.value + 'T' + t + ':00+09:00'};
  }

  function place(entry) {
    var item = el('li', {'class': 'place' + (entry.open ? '' : ' closed')});
    var title = el('h3', {}, entry.name + ' ');
    title.appendChild(el('span', {'class': 'badge kind'}, KINDS[entry.kind] || entry.kind_name));
    item.appendChild(title);
    var work = entry.kind === 'pharmacy' ? '영업' : '진료';
    if (entry.open) {
      var until = entry.closes === '24시간' ? '24시간 ' + work : entry.closes + '까지 ' + work;
      item.appendChild(el('p', {'class': 'until'}, until + (entry.holiday_hours ? ' (공휴일 ' + work + ')' : '')));
    } else {
      item.appendChild(el('p', {'class': 'until'}, entry.next_opens ? '다음 ' + work + ': ' + entry.next_opens : work + ' 시간 문의'));
    }
    item.appendChild(el('p', {'class': 'meta'}, entry.address));
    if (entry.treats && entry.treats.length) {
      item.appendChild(el('p', {'class': 'meta'}, (entry.kind === 'pharmacy' ? '취급: ' : '진료: ') + entry.treats.join(', ')));
    }
    var call = el('a', {'class': 'call', href: 'tel:' + entry.phone.replace(/[^0-9]/g, ''),
      'aria-label': entry.name + ' 전화 걸기 ' + entry.phone}, '전화 ' + entry.phone);
    item.appendChild(call);
    return item;
  }

  function show(answer) {
    var p = seoulParts(answer.at);
    var title = document.getElementById('result-title');
    title.textContent = p.month + '월 ' + p.day + '일 (' + p.weekday + ') ' + p.time + ' 기준';
    var holiday = document.getElementById('holiday');
    holiday.hidden = !answer.holiday;
    holiday.textContent = answer.holiday ? answer.holiday + ' · 공휴일' : '';
    var openList = document.getElementById('open-list');
    var closedList = document.getElementById('closed-list');
    openList.textContent = '';
    closedList.textContent = '';
    answer.open.forEach(function (e) { openList.appendChild(place(e)); });
    answer.closed.forEach(function (e) { closedList.appendChild(place(e)); });
    document.getElementById('count').textContent = '진료 가능 ' + answer.open.length + '곳 · 문 닫음 ' + answer.closed.length + '곳';
    document.getElementById('none-open').hidden = answer.open.length > 0;
    document.getElementById('closed-title').textContent = '문을 닫은 곳 (' + answer.closed.length + '곳)';
    document.getElementById('closed-box').hidden = answer.closed.length === 0;
    result.hidden = false;
    title.focus();
  }

  function search() {
    problem.textContent = '';
    var w = wanted();
    if (!w.ok) {
      problem.appendChild(el('p', {}, '입력한 내용을 확인해 주세요.'));
      problem.focus();
      return;
    }
    var query = [];
    if (w.at) { query.push('at=' + encodeURIComponent(w.at)); }
    if (kindInput.value) { query.push('kind=' + encodeURIComponent(kindInput.value)); }
    submit.disabled = true;
    fetch('../network/open' + (query.length ? '?' + query.join('&') : ''), {headers: {Accept: 'application/json'}})
      .then(function (r) {
        return r.json().then(function (body) { return {status: r.status, body: body}; });
      })
      .then(function (answer) {
        if (answer.status !== 200) { throw new Error('status ' + answer.status); }
        show(answer.body);
      })
      .catch(function () {
        problem.appendChild(el('p', {}, '진료 가능한 곳을 불러오지 못했습니다. 잠시 후 다시 시도해 주세요.'));
        problem.focus();
      })
      .then(function () { submit.disabled = false; });
  }

  document.getElementById('when-now').addEventListener('change', showWhen);
  document.getElementById('when-later').addEventListener('change', showWhen);
  form.addEventListener('submit', function (event) { event.preventDefault(); search(); });

  // a shared link: open-now.html?at=2027-02-07T21:00&kind=clinic
  var params = new URLSearchParams(window.location.search);
  var at = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})/.exec(params.get('at') || '');
  if (at) {
    document.getElementById('when-later').checked = true;
    showWhen();
    dateInput.value = at[1];
    timeInput.value = at[2];
  }
  if (params.get('kind') && /^(clinic|pharmacy)$/.test(params.get('kind'))) { kindInput.value = params.get('kind'); }
  search();
}());
