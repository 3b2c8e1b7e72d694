// The console's router and frame. Screens are ES modules that export `screen`:
//
//   export const screen = {
//     id: 'replies',                 // unique
//     title: '답변 대기',             // the page title and the menu entry
//     nav: true,                     // listed in the top menu
//     roles: ['cs_admin', ...],      // who sees it (left out: every role)
//     match: (path) => ...,          // '#/replies/123' -> path 'replies/123' -> params or null
//     render(main, params, ctx) {},  // draws into <main>; may return a cleanup function
//   };
//
// To add one (replies.js, patients.js, campaigns.js, reports.js): write the module, import it
// below and add it to SCREENS, and list its file in ASSETS (sotong/web/console/__init__.py).
// ctx gives every screen: config (/console/config.json), staff (who is signed in), api, go(hash).

import { api, events } from './api.js';
import { configure, finishHostedSignIn, signedIn, signOut } from './auth.js';
import { h, clear, setServerTime } from './ui.js';
import { ROLES } from './labels.js';
import { screen as signin } from './signin.js';
import { screen as inbox } from './inbox.js';
import { screen as complaint } from './complaint.js';
import { screen as replies } from './replies.js';
import { screen as patients } from './patients.js';
import { screen as campaigns } from './campaigns.js';
import { screen as reports } from './reports.js';

export const SCREENS = [signin, inbox, complaint, replies, patients, campaigns, reports];

const main = document.getElementById('main');
let config = null;
let cleanup = null;
let moved = false; // the first screen leaves focus at the top (Tab: the skip link first)

function go(hash) {
  if (window.location.hash === hash) route();
  else window.location.hash = hash;
}

function departmentName(id) {
  const found = (config.departments || []).find((d) => d.id === id);
  return found ? found.name : id;
}

function frame(staff) {
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  if (!staff) {
    clear(nav);
    clear(who);
    return;
  }
  const current = (window.location.hash.replace(/^#\/?/, '').split('/')[0]) || 'inbox';
  clear(nav, h('ul', {}, SCREENS.filter((s) => s.nav && allowed(s, staff)).map((s) => h('li', {},
    h('a', { href: `#/${s.id}`, 'aria-current': current === s.id ? 'page' : undefined }, s.title)))));
  const role = ROLES[staff.role] || staff.role;
  clear(who,
    h('span', { class: 'who-name' }, staff.name || staff.username),
    h('span', { class: 'who-role' }, staff.department ? `${role} · ${departmentName(staff.department)}` : role),
    h('button', { type: 'button', class: 'quiet', id: 'sign-out', onclick: () => signOut() }, '로그아웃'));
}

function allowed(screen, staff) {
  return !screen.roles || (staff && screen.roles.includes(staff.role));
}

function route() {
  if (cleanup) { try { cleanup(); } catch { /* a screen's leftovers never stop the next */ } }
  cleanup = null;
  const hash = window.location.hash || '';
  const path = hash.startsWith('#/') ? decodeURIComponent(hash.slice(2)) : '';
  const staff = signedIn();
  frame(staff);
  if (!staff) {
    const back = path && path !== 'signin' ? hash : '#/inbox';
    show(signin, {}, { back });
    return;
  }
  const target = path === '' || path === 'signin' ? 'inbox' : path;
  for (const screen of SCREENS) {
    if (screen.public) continue;
    const params = screen.match(target);
    if (!params) continue;
    if (!allowed(screen, staff)) break;
    show(screen, params, {});
    return;
  }
  document.title = '없는 화면 · 소통';
  clear(main, h('section', { class: 'card' }, h('h1', { tabindex: '-1', id: 'screen-title' }, '없는 화면입니다'),
    h('p', {}, h('a', { href: '#/inbox' }, '민원함으로 가기'))));
  main.querySelector('h1').focus();
}

function show(screen, params, extra) {
  document.title = `${screen.title} · ${config.hospital.name} · 소통`;
  main.dataset.screen = screen.id;
  const ctx = {
    config, staff: signedIn(), api, go, departmentName,
    signedIn: (hash) => go(hash),
    ...extra,
  };
  const result = screen.render(main, params, ctx);
  cleanup = typeof result === 'function' ? result : null;
  const title = main.querySelector('#screen-title');
  if (moved && title && !main.contains(document.activeElement)) title.focus();
  moved = true;
}

async function start() {
  // The skip link focuses <main> (the hash stays the route's).
  document.getElementById('skip-link').addEventListener('click', (event) => {
    event.preventDefault();
    main.focus();
  });
  try {
    const answer = await fetch(new URL('config.json', window.location.href.split('#')[0]));
    config = await answer.json();
  } catch {
    clear(main, h('p', { class: 'form-error', role: 'alert' }, '설정을 불러오지 못했습니다. 새로 고침해 주세요.'));
    return;
  }
  configure(config);
  try { // SLA countdowns run on the server's clock, not this PC's
    const health = await fetch(new URL('../health', window.location.href.split('#')[0]));
    setServerTime((await health.json()).time);
  } catch { /* this PC's clock, then */ }
  document.getElementById('hospital-name').textContent = `${config.hospital.name} 상담 콘솔`;
  if (config.mode === 'aws') {
    try {
      await finishHostedSignIn();
    } catch (error) {
      clear(main, h('p', { class: 'form-error', role: 'alert' }, error.message));
    }
  }
  events.addEventListener('signed-out', () => route());
  window.addEventListener('hashchange', route);
  route();
}

start();
