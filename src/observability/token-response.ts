/** The token fields of a token endpoint answer (RFC 6749 §5.1, OIDC Core §3.1.3.3). */
export const TOKEN_RESPONSE_FIELDS = ['access_token', 'refresh_token', 'id_token'] as const;

export type TokenResponseField = (typeof TOKEN_RESPONSE_FIELDS)[number];

/** Which token fields an answer body holds: what the `token_issued` event names and the issued-tokens metric counts. */
export function tokenFieldsOf(body: unknown): TokenResponseField[] {
  if (typeof body !== 'object' || body === null) return [];
  const answer = body as Record<string, unknown>;
  return TOKEN_RESPONSE_FIELDS.filter((field) => typeof answer[field] === 'string');
}
