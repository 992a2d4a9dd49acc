/*
 * WWW-Authenticate values for bearer-protected resources: RFC 6750 §3 (error, error_description,
 * scope) with RFC 9728 §5.1 `resource_metadata`, which is how an MCP client finds the
 * authorization server from its first 401.
 */

export interface UnauthorizedChallengeOptions {
  /** The RFC 9728 metadata URL of this resource (protectedResourceMetadataUrl). */
  resourceMetadata: string;
  /** Scopes a new token should carry for this request (MCP: the client asks for these). */
  scope?: readonly string[];
  /** Only when the request carried a token (RFC 6750 §3.1: no error code for a request without one). */
  error?: 'invalid_token' | 'invalid_request';
  errorDescription?: string;
}

export interface InsufficientScopeChallengeOptions {
  resourceMetadata: string;
  /** The scopes to ask for on step-up; never empty for a 403 worth answering. */
  scope: readonly string[];
  errorDescription?: string;
}

/** RFC 7230 quoted-string, with `"` and `\` escaped and control characters dropped. */
function quoted(value: string): string {
  return `"${value.replace(/[\x00-\x1F\x7F]/g, '').replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E, so no quote, backslash or non-ASCII. */
function description(value: string): string {
  return value.replace(/["\\]/g, "'").replace(/[^\x20-\x7E]/g, '?').slice(0, 200);
}

function challenge(params: ReadonlyArray<readonly [string, string | undefined]>): string {
  const present = params.filter((p): p is readonly [string, string] => p[1] !== undefined && p[1] !== '');
  return `Bearer ${present.map(([name, value]) => `${name}=${quoted(value)}`).join(', ')}`;
}

const scopeValue = (scope: readonly string[] | undefined) => (scope && scope.length > 0 ? scope.join(' ') : undefined);

/** `Bearer resource_metadata="…", scope="…"[, error="invalid_token", error_description="…"]` for a 401. */
export function unauthorizedChallenge(options: UnauthorizedChallengeOptions): string {
  return challenge([
    ['resource_metadata', options.resourceMetadata],
    ['scope', scopeValue(options.scope)],
    ['error', options.error],
    ['error_description', options.error && options.errorDescription ? description(options.errorDescription) : undefined],
  ]);
}

/** `Bearer error="insufficient_scope", scope="…", resource_metadata="…"` for a 403 (RFC 6750 §3.1, MCP step-up). */
export function insufficientScopeChallenge(options: InsufficientScopeChallengeOptions): string {
  return challenge([
    ['error', 'insufficient_scope'],
    ['scope', scopeValue(options.scope)],
    ['resource_metadata', options.resourceMetadata],
    ['error_description', options.errorDescription ? description(options.errorDescription) : undefined],
  ]);
}
