// 프로그램 둘러보기: list, a code by SMS, sessions off the patient's own treatment days, sign up.
"use strict";
(function () {
  const API = "../programmes";
  const $ = (id) => document.getElementById(id);
  let programme = null;
  let phone = "";
  let token = "";
  let cancelToken = "";

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  async function send(method, path, body) {
    const response = await fetch(API + path, {
      method,
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    let data = {};
    try { data = await response.json(); } catch (e) { data = {}; }
    return { status: response.status, data };
  }

  function clearErrors() {
    $("summary").textContent = "";
    document.querySelectorAll(".error").forEach((e) => { e.textContent = ""; });
    document.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
  }

  const FIELDS = {
    "body.phone": "phone", "body.code": "code", "body.name": "name",
    "body.starts_at": "session", "body.consent_to_contact": "consent", "body.token": "code",
  };

  function korean(message) {
    const found = /\(([^()]*[가-힣][^()]*)\)\s*$/.exec(message || "");
    return found ? found[1] : "";
  }

  function showError(answer, fallback) {
    const data = answer.data || {};
    const field = data.field || ((data.fields || [])[0] || {}).field;
    const target = FIELDS[field];
    let text = korean(data.message) || fallback;
    if (answer.status === 429) text = korean(data.message) || "잠시 후 다시 시도해 주세요.";
    if (field === "body.code") text = answer.status === 422 ? "인증번호 6자리를 입력해 주세요." : (data.tries_left !== undefined ? `인증번호가 맞지 않습니다. (남은 횟수 ${data.tries_left}회)` : "인증번호가 만료되었거나 사용되었습니다. 다시 받아 주세요.");
    if (field === "body.phone" && answer.status === 422) text = "휴대폰 번호를 확인해 주세요. 예: 010-1234-5678";
    if (field === "body.phone" && answer.status === 403) text = "이 프로그램은 해당 진료를 받고 계신 분을 위한 모임입니다. 병원 대표번호로 문의해 주세요.";
    if (field === "body.starts_at" && answer.status === 409) text = "내 치료·예약 일정과 겹치는 모임입니다. 다른 날을 골라 주세요.";
    if (target && $(target + "-error")) {
      $(target + "-error").textContent = text;
      const input = target === "session" ? $("session-group") : $(target);
      if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
    } else {
      $("summary").textContent = text;
      $("summary").focus();
    }
  }

  function session(s) {
    const li = el("li");
    li.appendChild(el("span", {}, s.when));
    li.appendChild(el("span", { class: s.full ? "seats full" : "seats" }, s.full ? "정원 마감 · 대기 가능" : `잔여 ${s.seats_left}석`));
    return li;
  }

  function card(p) {
    const article = el("article", { class: "card programme", "aria-labelledby": `p-${p.id}` });
    article.appendChild(el("span", { class: "tag" }, p.kind_label));
    article.appendChild(el("h2", { id: `p-${p.id}` }, p.name));
    article.appendChild(el("p", {}, p.summary));
    const facts = el("dl", { class: "facts" });
    const rows = [
      ["일정", p.schedule + (p.holidays_off ? " (공휴일 휴무)" : "")],
      ["장소", p.place],
      ["진행", p.facilitator],
      ["정원", `${p.capacity}명`],
      ["대상", p.open_to_anyone ? "누구나 (가족 포함)" : `${p.department} 진료 중인 환자`],
    ];
    rows.forEach(([k, v]) => { facts.appendChild(el("dt", {}, k)); facts.appendChild(el("dd", {}, v)); });
    article.appendChild(facts);
    if (p.next_sessions.length) {
      article.appendChild(el("p", { class: "small", id: `n-${p.id}` }, "다가오는 모임"));
      const list = el("ul", { class: "sessions", "aria-labelledby": `n-${p.id}` });
      p.next_sessions.slice(0, 3).forEach((s) => list.appendChild(session(s)));
      article.appendChild(list);
    }
    const button = el("button", { type: "button", class: "btn wide", "aria-describedby": `p-${p.id}` }, `${p.name} 신청하기`);
    button.addEventListener("click", () => choose(p));
    article.appendChild(button);
    return article;
  }

  async function load() {
    const answer = await send("GET", "");
    $("loading").hidden = true;
    if (answer.status !== 200) { $("summary").textContent = "프로그램을 불러오지 못했습니다. 잠시 후 다시 시도해 주세요."; return; }
    if (answer.data.hospital) $("org").textContent = `${answer.data.hospital} · 환자 지원 프로그램`;
    const list = $("list");
    if (!answer.data.programmes.length) list.appendChild(el("p", {}, "지금은 신청할 수 있는 프로그램이 없습니다."));
    answer.data.programmes.forEach((p) => list.appendChild(card(p)));
  }

  function step(n, text) { $("step-label").textContent = `${n}/3 ${text}`; }

  function choose(p) {
    programme = p;
    clearErrors();
    $("list").hidden = true;
    $("signup").hidden = false;
    $("signup-title").textContent = `${p.name} 신청하기`;
    $("phone-form").hidden = false;
    $("code-form").hidden = true;
    $("session-form").hidden = true;
    step(1, "휴대폰 인증");
    $("signup-title").focus();
  }

  async function requestCode() {
    clearErrors();
    phone = $("phone").value.trim();
    $("send-code").disabled = true;
    const answer = await send("POST", "/codes", { phone });
    $("send-code").disabled = false;
    if (answer.status !== 202) { showError(answer, "인증번호를 보내지 못했습니다."); return; }
    $("phone-form").hidden = true;
    $("code-form").hidden = false;
    $("code-hint").textContent = `${phone}(으)로 보낸 6자리 숫자를 ${answer.data.valid_minutes}분 안에 입력해 주세요.`;
    step(2, "인증번호 확인");
    $("code").focus();
  }

  function offers(data) {
    const choices = $("session-choices");
    choices.textContent = "";
    data.sessions.forEach((s, i) => {
      const label = el("label", { class: "choice" });
      const input = el("input", { type: "radio", name: "session", value: s.starts_at, id: `s-${i}` });
      label.appendChild(input);
      const text = el("span", {}, s.when);
      text.appendChild(el("small", {}, s.full ? "정원 마감 · 대기 신청" : `잔여 ${s.seats_left}석`));
      label.appendChild(text);
      choices.appendChild(label);
    });
    if (!data.sessions.length) choices.appendChild(el("p", {}, "지금 신청할 수 있는 모임이 없습니다."));
    const avoided = $("avoided");
    avoided.textContent = "";
    avoided.hidden = !data.avoided.length;
    if (data.avoided.length) {
      avoided.appendChild(el("strong", {}, `내 치료·예약 일정과 겹치는 ${data.avoided.length}개 모임은 빼고 보여 드립니다.`));
      const list = el("ul");
      data.avoided.slice(0, 4).forEach((s) => list.appendChild(el("li", {}, s.when)));
      avoided.appendChild(list);
    }
    if (data.name && !$("name").value) $("name").value = data.name;
  }

  async function verify() {
    clearErrors();
    const code = $("code").value.trim();
    $("verify").disabled = true;
    const answer = await send("POST", `/${programme.id}/offers`, { phone, code });
    $("verify").disabled = false;
    if (answer.status !== 200) { showError(answer, "인증하지 못했습니다."); return; }
    token = answer.data.token;
    offers(answer.data);
    $("code-form").hidden = true;
    $("session-form").hidden = false;
    step(3, "모임 선택");
    $("signup-title").focus();
  }

  async function signUp() {
    clearErrors();
    const picked = document.querySelector("input[name=session]:checked");
    let bad = false;
    if (!picked) { $("session-error").textContent = "참여할 모임을 골라 주세요."; $("session-group").setAttribute("aria-invalid", "true"); bad = true; }
    if (!$("name").value.trim()) { $("name-error").textContent = "이름을 입력해 주세요."; $("name").setAttribute("aria-invalid", "true"); bad = true; }
    if (!$("consent").checked) { $("consent-error").textContent = "안내를 받으시려면 동의가 필요합니다."; $("consent").setAttribute("aria-invalid", "true"); bad = true; }
    if (bad) { const first = document.querySelector("[aria-invalid=true]"); if (first) first.focus(); return; }
    $("submit").disabled = true;
    const answer = await send("POST", `/${programme.id}/signups`, {
      token, starts_at: picked.value, name: $("name").value.trim(), consent_to_contact: true,
    });
    $("submit").disabled = false;
    if (answer.status !== 201 && answer.status !== 200) { showError(answer, "신청하지 못했습니다."); return; }
    done(answer.data);
  }

  function done(data) {
    cancelToken = data.cancel_token;
    $("signup").hidden = true;
    $("done").hidden = false;
    const waiting = data.status === "waiting";
    $("done-title").textContent = waiting ? `대기 ${data.position || ""}번으로 등록되었습니다` : "신청이 완료되었습니다";
    $("done-text").textContent = waiting ? "자리가 나면 바로 문자로 알려 드립니다." : "모임 전날 안내 메시지를 보내 드립니다.";
    const facts = $("done-facts");
    facts.textContent = "";
    [["프로그램", data.programme], ["일시", data.when], ["장소", data.place]].forEach(([k, v]) => {
      facts.appendChild(el("dt", {}, k)); facts.appendChild(el("dd", {}, v));
    });
    $("done-title").focus();
  }

  async function cancel() {
    clearErrors();
    const answer = await send("POST", "/cancellations", { cancel_token: cancelToken });
    if (answer.status !== 200) { showError(answer, "취소하지 못했습니다. 병원으로 연락해 주세요."); return; }
    $("done-title").textContent = "신청을 취소했습니다";
    $("done-text").textContent = "다음에 다시 만나요.";
    $("cancel").hidden = true;
    $("done-title").focus();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("phone-form").addEventListener("submit", (e) => { e.preventDefault(); requestCode(); });
    $("resend").addEventListener("click", () => { $("code-form").hidden = true; $("phone-form").hidden = false; step(1, "휴대폰 인증"); $("phone").focus(); });
    $("code-form").addEventListener("submit", (e) => { e.preventDefault(); verify(); });
    $("session-form").addEventListener("submit", (e) => { e.preventDefault(); signUp(); });
    $("cancel").addEventListener("click", cancel);
    load();
  });
})();
