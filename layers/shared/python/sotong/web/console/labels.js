// The hospital's words for what the API names in English. Icons are shapes, so no status is
// told by colour alone.

export const ROLES = {
  cs_admin: '고객지원팀 관리자',
  department_staff: '진료과 직원',
  reception: '원무과·접수',
  qi: '적정관리(QI)팀',
};

export const STATUS = {
  received: { text: '접수(미확인)', icon: '●' },
  acknowledged: { text: '확인함', icon: '◐' },
  assigned: { text: '담당 배정', icon: '◑' },
  in_progress: { text: '처리 중', icon: '▶' },
  awaiting_patient: { text: '환자 답변 대기', icon: '‖' },
  resolved: { text: '처리 완료', icon: '✔' },
  closed: { text: '종결', icon: '■' },
};

export const URGENCY = {
  critical: { text: '긴급', icon: '⚠' },
  high: { text: '높음', icon: '▲' },
  normal: { text: '보통', icon: '○' },
};

export const KIND = { complaint: '불만', suggestion: '제안', compliment: '칭찬' };

export const CHANNEL = {
  web: '홈페이지',
  app: '앱',
  phone: '전화',
  walk_in: '방문',
  sms: '문자',
  kakao: '카카오톡',
};

export const STATE = { open: '처리 중인 민원', resolved: '처리 완료', closed: '종결' };

export const MESSAGE_STATUS = {
  calling: { text: '보내는 중', icon: '…' },
  sent: { text: '발송됨', icon: '↗' },
  delivered: { text: '전달됨', icon: '✔' },
  fallback_sent: { text: '문자로 대체 전달', icon: '↪' },
  failed: { text: '실패', icon: '✖' },
  held: { text: '보류(발송 대기)', icon: '‖' },
  suppressed: { text: '보내지 않음', icon: '⊘' },
  retry: { text: '재시도 대기', icon: '↻' },
  uncertain: { text: '확인 필요', icon: '?' },
};

export const TEMPLATE = {
  complaint_received: '접수 안내',
  complaint_progress: '진행 안내',
  complaint_outcome: '처리 결과',
  complaint_outcome_email: '처리 결과(메일)',
  complaint_survey: '만족도 조사',
  staff_reply: '직원 답변',
  staff_alert: '직원 알림',
  staff_critical: '긴급 호출(당직)',
  staff_routed: '부서 배정 알림',
  staff_routed_email: '부서 배정 알림(메일)',
  staff_digest: '부서 아침 현황',
  staff_digest_email: '부서 아침 현황(메일)',
};

export const RECIPIENT = { patient: '환자', staff: '직원' };

export const MESSAGE_CHANNEL = { alimtalk: '알림톡', sms: '문자', lms: '장문 문자', email: '메일' };

export function label(table, key) {
  const found = table[key];
  if (found === undefined) return key == null ? '—' : String(key);
  return typeof found === 'string' ? found : found.text;
}
