// Sign-in. In AWS: Cognito's hosted UI with the authorization code grant and PKCE (S256), the
// tokens kept in sessionStorage (gone when the tab closes). On the local stack: a token for a
// demo user from POST /_local/token.

const KEY = 'sotong.console.session';
const PENDING = 'sotong.console.pkce';
const API_ROOT = new URL('../', window.location.href);

let config = null;

export function configure(settings) { config = settings; }

function b64url(bytes) {
  let text = '';
  for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function random(size = 32) {
  return b64url(crypto.getRandomValues(new Uint8Array(size)));
}

export function claimsOf(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(Array.from(atob(part), (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join(''));
    return JSON.parse(json);
  } catch {
    return {};
  }
}

/** Who the token says is signed in: role and department from the Cognito groups. */
export function staffOf(token) {
  const claims = claimsOf(token);
  let groups = claims['cognito:groups'] || [];
  if (typeof groups === 'string') groups = groups.split(',');
  const order = ['cs_admin', 'department_staff', 'reception', 'qi'];
  const role = order.find((r) => groups.includes(r)) || null;
  const department = (groups.find((g) => g.startsWith('dept-')) || '').slice(5) || null;
  return {
    role,
    department,
    username: claims['cognito:username'] || claims.email || claims.sub || '',
    name: claims.name || claims['cognito:username'] || '',
    exp: claims.exp || 0,
    changes: role !== 'qi',
  };
}

export function session() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) || 'null');
  } catch {
    return null;
  }
}

function save(tokens) {
  sessionStorage.setItem(KEY, JSON.stringify(tokens));
}

export function signedIn() {
  const current = session();
  return current && current.id_token ? staffOf(current.id_token) : null;
}

function redirectUri() {
  return config.redirect_uri || new URL('./', window.location.href).href.split('#')[0].split('?')[0];
}

async function tokenRequest(body) {
  const answer = await fetch(`${config.domain}/oauth2/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(body),
  });
  if (!answer.ok) throw new Error(`로그인 서버가 ${answer.status}로 답했습니다`);
  return answer.json();
}

/** AWS: off to the hosted UI, with a fresh PKCE verifier and state. */
export async function startHostedSignIn() {
  const verifier = random(48);
  const state = random(16);
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, back: window.location.hash }));
  const query = new URLSearchParams({
    response_type: 'code',
    client_id: config.client_id,
    redirect_uri: redirectUri(),
    scope: (config.scopes || ['openid', 'email', 'profile']).join(' '),
    state,
    code_challenge_method: 'S256',
    code_challenge: b64url(digest),
  });
  window.location.assign(`${config.domain}/oauth2/authorize?${query}`);
}

/** AWS: back from the hosted UI with ?code=&state=: exchange the code (with the verifier). */
export async function finishHostedSignIn() {
  const params = new URLSearchParams(window.location.search);
  if (!params.has('code') && !params.has('error')) return false;
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || 'null');
  sessionStorage.removeItem(PENDING);
  const back = (pending && pending.back) || '#/inbox';
  window.history.replaceState(null, '', `${redirectUri()}${back}`);
  if (params.has('error')) throw new Error(`로그인하지 못했습니다: ${params.get('error_description') || params.get('error')}`);
  if (!pending || pending.state !== params.get('state')) throw new Error('로그인 요청이 맞지 않습니다. 다시 로그인해 주세요.');
  const tokens = await tokenRequest({
    grant_type: 'authorization_code',
    client_id: config.client_id,
    code: params.get('code'),
    redirect_uri: redirectUri(),
    code_verifier: pending.verifier,
  });
  save(tokens);
  return true;
}

/** Local stack: a signed token for one of the demo users. */
export async function localSignIn(role, department) {
  const answer = await fetch(new URL('_local/token', API_ROOT), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ role, department }),
  });
  if (!answer.ok) throw new Error(`토큰을 받지 못했습니다 (${answer.status})`);
  const data = await answer.json();
  save({ id_token: data.token });
}

/** The ID token for the API (API Gateway's Cognito authorizer), refreshed when it expired. */
export async function token() {
  const current = session();
  if (!current || !current.id_token) return null;
  const { exp } = staffOf(current.id_token);
  if (exp && exp * 1000 < Date.now() + 30000) {
    if (config && config.mode === 'aws' && current.refresh_token) {
      try {
        const fresh = await tokenRequest({
          grant_type: 'refresh_token', client_id: config.client_id, refresh_token: current.refresh_token,
        });
        save({ ...current, ...fresh });
        return fresh.id_token;
      } catch {
        forget();
        return null;
      }
    }
    forget();
    return null;
  }
  return current.id_token;
}

export function forget() {
  sessionStorage.removeItem(KEY);
}

export async function signOut() {
  const current = session();
  forget();
  if (config && config.mode === 'aws') {
    if (current && current.refresh_token) {
      try {
        await fetch(`${config.domain}/oauth2/revoke`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ token: current.refresh_token, client_id: config.client_id }),
        });
      } catch { /* the session is gone from this tab either way */ }
    }
    const query = new URLSearchParams({ client_id: config.client_id, logout_uri: redirectUri() });
    window.location.assign(`${config.domain}/logout?${query}`);
    return;
  }
  if (window.location.hash === '#/') window.dispatchEvent(new HashChangeEvent('hashchange'));
  else window.location.hash = '#/';
}
