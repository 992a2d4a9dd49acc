import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { InsufficientScopeError, InvalidTokenError } from './errors.ts';

/** A scope token (RFC 6749 §3.3): printable ASCII without space, `"` or `\`. */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

/** The `scope` claim or introspection member: absent means none; anything but a string is malformed. */
export function parseScopeClaim(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (typeof value !== 'string') throw new InvalidTokenError('ERR_TOKEN_CLAIMS', 'scope must be a space-separated string');
  const scopes = value.split(' ').filter((s) => s !== '');
  if (!scopes.every((s) => SCOPE_TOKEN.test(s))) throw new InvalidTokenError('ERR_TOKEN_CLAIMS', 'scope holds an invalid scope token');
  return [...new Set(scopes)];
}

/** Checks scope names given by the server's own code, once, where they are configured. */
export function assertScopeNames(scopes: readonly string[], what: string): void {
  for (const scope of scopes) {
    if (!SCOPE_TOKEN.test(scope)) throw new TypeError(`${what}: ${JSON.stringify(scope)} is not a scope token (RFC 6749 §3.3)`);
  }
}

/**
 * Per-tool (or per-route) scope check. Throws InsufficientScopeError naming every required
 * scope (what a client should ask for on step-up, MCP 2025-11-25 "Scope Challenge Handling")
 * and the missing ones.
 */
export function requireScopes(authInfo: AuthInfo, scopes: readonly string[]): void {
  const granted = new Set(authInfo.scopes);
  const missing = scopes.filter((scope) => !granted.has(scope));
  if (missing.length > 0) throw new InsufficientScopeError(scopes, missing, authInfo.scopes);
}
