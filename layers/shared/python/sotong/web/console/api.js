// The staff API, called from the console's own origin (no CORS): `api('inbox', {query})`.
// Every answer that is not 2xx becomes an ApiError naming the field, as the API does:
// {"error": "validation", "message": "...", "field": "body.outcome", "fields": [...]}.

import { token, forget } from './auth.js';

const ROOT = new URL('../', window.location.href); // /console/ -> the API's root (stage included)

const KOREAN = {
  400: '요청을 처리할 수 없습니다.',
  401: '로그인이 필요합니다.',
  403: '권한이 없습니다.',
  404: '없음 또는 권한 없음: 찾을 수 없습니다.',
  409: '지금 상태에서는 할 수 없습니다.',
  413: '내용이 너무 깁니다.',
  422: '입력한 내용을 확인해 주세요.',
  429: '요청이 너무 많습니다. 잠시 후 다시 시도해 주세요.',
};

export class ApiError extends Error {
  constructor(status, body) {
    const detail = body && typeof body.error === 'object' && body.error ? body.error : body || {};
    super(detail.message || `HTTP ${status}`);
    this.status = status;
    this.code = typeof body?.error === 'string' ? body.error : detail.code;
    this.field = detail.field || (detail.fields && detail.fields[0] && detail.fields[0].field) || null;
    this.fields = detail.fields || (detail.field ? [{ field: detail.field, problem: detail.message }] : []);
    this.allowed = detail.allowed || null;
    this.body = body;
    this.korean = status === 0 ? '인터넷 연결을 확인해 주세요.' : KOREAN[status] || '잠시 후 다시 시도해 주세요.';
  }

  text() {
    return this.status === 0 ? this.korean : `${this.korean} (${this.message})`;
  }
}

export const events = new EventTarget(); // 'signed-out' when the API refuses the token

export async function api(path, { method = 'GET', query, body, headers: extra } = {}) {
  const url = new URL(path.replace(/^\//, ''), ROOT);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(name, value);
  }
  const bearer = await token();
  if (!bearer) {
    events.dispatchEvent(new Event('signed-out'));
    throw new ApiError(401, { message: 'not signed in' });
  }
  const headers = { ...(extra || {}), Authorization: `Bearer ${bearer}`, Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let answer;
  try {
    answer = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, { message: 'network' });
  }
  let data = null;
  try {
    data = await answer.json();
  } catch {
    data = null;
  }
  if (answer.status === 401) {
    forget();
    events.dispatchEvent(new Event('signed-out'));
  }
  if (!answer.ok) throw new ApiError(answer.status, data);
  return data;
}
