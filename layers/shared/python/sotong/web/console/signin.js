// The sign-in screen: the hospital's Cognito sign-in in AWS, the demo users on the local stack.

import { localSignIn, startHostedSignIn } from './auth.js';
import { h, clear } from './ui.js';
import { ROLES } from './labels.js';

export const screen = {
  id: 'signin',
  title: '로그인',
  public: true,
  match: (path) => (path === 'signin' ? {} : null),
  render(main, _params, ctx) {
    const { config } = ctx;
    const problem = h('p', { class: 'form-error', role: 'alert', hidden: true, tabindex: '-1' });
    const fail = (error) => {
      problem.textContent = error.message || String(error);
      problem.hidden = false;
      problem.focus();
    };
    const heading = h('h1', { tabindex: '-1', id: 'screen-title' }, '로그인');
    if (config.mode === 'aws') {
      clear(main, h('section', { class: 'card signin' }, heading,
        h('p', {}, `${config.hospital.name} 직원 계정으로 로그인합니다. 병원 계정의 비밀번호와 인증 앱의 번호가 필요합니다.`),
        problem,
        h('button', { class: 'primary', type: 'button', onclick: () => startHostedSignIn().catch(fail) }, '병원 계정으로 로그인')));
      return null;
    }
    const groups = {};
    for (const user of config.users || []) (groups[user.role] ||= []).push(user);
    const go = async (user) => {
      try {
        await localSignIn(user.role, user.department);
        ctx.signedIn(ctx.back || '#/inbox');
      } catch (error) {
        fail(error);
      }
    };
    clear(main, h('section', { class: 'card signin' }, heading,
      h('p', {}, '로컬 스택입니다. 역할별 시연 사용자로 로그인하세요. (AWS에서는 병원의 Cognito 로그인 화면이 열립니다.)'),
      problem,
      Object.entries(groups).map(([role, users]) => h('fieldset', { class: 'users' },
        h('legend', {}, ROLES[role] || role),
        h('ul', { class: 'user-list' }, users.map((user) => h('li', {},
          h('button', {
            type: 'button',
            class: 'user',
            dataset: { role: user.role, department: user.department || '' },
            onclick: () => go(user),
          }, user.label))))))));
    return null;
  },
};
