import * as sdkErrors from '@modelcontextprotocol/sdk/server/auth/errors.js';
import { describe, expect, it } from 'vitest';
import { authorizeBearerRequest, bearerErrorResponse, readBearerToken, type BearerAuthOptions } from './bearer-auth.ts';
import { InsufficientScopeError, InvalidRequestError, InvalidTokenError, VerifierUnavailableError } from './errors.ts';
import { protectedResourceMetadata, protectedResourceMetadataPaths, protectedResourceMetadataUrl } from './protected-resource-metadata.ts';
import { requireScopes } from './scopes.ts';
import type { AuthInfo, TokenVerifier } from './token-verifier.ts';
import { insufficientScopeChallenge, unauthorizedChallenge } from './www-authenticate.ts';

const PRM = 'https://mcp.example.com/.well-known/oauth-protected-resource/mcp';
const info: AuthInfo = { token: 'tok', clientId: 'c', scopes: ['notes:read'], expiresAt: 2_000_000_000 };
const accepting: TokenVerifier = { verifyAccessToken: async (token) => ({ ...info, token }) };
const options = (extra: Partial<BearerAuthOptions> = {}): BearerAuthOptions => ({ verifier: accepting, resourceMetadataUrl: PRM, ...extra });

describe('readBearerToken', () => {
  it('returns the token of a well-formed Bearer header, and nothing when none is presented', () => {
    expect(readBearerToken('Bearer abc-._~+/=')).toBe('abc-._~+/=');
    expect(readBearerToken('bearer abc')).toBe('abc');
    expect(readBearerToken(' Bearer   abc ')).toBe('abc');
    expect(readBearerToken(['Bearer abc'])).toBe('abc');
    expect(readBearerToken(undefined)).toBeUndefined();
    expect(readBearerToken([])).toBeUndefined();
    expect(readBearerToken('Basic abc')).toBeUndefined();
    expect(readBearerToken('Bearerabc')).toBeUndefined();
  });

  it('refuses malformed credentials with invalid_request', () => {
    for (const value of ['', '   ', 'Bearer', 'Bearer ', 'Bearer a b', 'Bearer a\tb', 'Bearer "a"', 'Bearer a,b', 'Bearer =a', 'Bearer a=b', 'Bearer é', `Bearer ${'a'.repeat(8193)}`]) {
      expect(() => readBearerToken(value), JSON.stringify(value)).toThrow(InvalidRequestError);
    }
    expect(() => readBearerToken(['Bearer a', 'Bearer b'])).toThrow(/more than one Authorization/);
    expect(() => readBearerToken('Bearer abc', 'x=1&access_token=abc')).toThrow(expect.objectContaining({ code: 'ERR_TOKEN_IN_QUERY' }));
  });
});

describe('WWW-Authenticate values', () => {
  it('builds the 401 and 403 challenges of RFC 6750 §3 and RFC 9728 §5.1', () => {
    expect(unauthorizedChallenge({ resourceMetadata: PRM, scope: ['a', 'b'] })).toBe(`Bearer resource_metadata="${PRM}", scope="a b"`);
    expect(unauthorizedChallenge({ resourceMetadata: PRM })).toBe(`Bearer resource_metadata="${PRM}"`);
    expect(unauthorizedChallenge({ resourceMetadata: PRM, error: 'invalid_token', errorDescription: 'expired' }))
      .toBe(`Bearer resource_metadata="${PRM}", error="invalid_token", error_description="expired"`);
    expect(insufficientScopeChallenge({ resourceMetadata: PRM, scope: ['notes:write'] }))
      .toBe(`Bearer error="insufficient_scope", scope="notes:write", resource_metadata="${PRM}"`);
  });

  it('keeps error_description inside its RFC 6750 character set', () => {
    const value = unauthorizedChallenge({ resourceMetadata: PRM, error: 'invalid_token', errorDescription: 'bad "quote" \\ ünï\r\ncode' });
    const description = /error_description="([^"]*)"$/.exec(value)?.[1] ?? '';
    expect(description).toMatch(/^[\x20\x21\x23-\x5B\x5D-\x7E]+$/);
  });
});

describe('protected resource metadata (RFC 9728)', () => {
  it('derives the well-known paths and URL from the resource path', () => {
    expect(protectedResourceMetadataPaths('http://host/mcp')).toEqual(['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource']);
    expect(protectedResourceMetadataPaths('https://host:8443/a/b/')).toEqual(['/.well-known/oauth-protected-resource/a/b/', '/.well-known/oauth-protected-resource']);
    expect(protectedResourceMetadataPaths('https://host')).toEqual(['/.well-known/oauth-protected-resource']);
    expect(protectedResourceMetadataUrl('http://localhost:3001/mcp')).toBe('http://localhost:3001/.well-known/oauth-protected-resource/mcp');
  });

  it('builds the document and refuses resources that cannot be canonical', () => {
    expect(protectedResourceMetadata({ resource: 'http://localhost:3001/mcp', issuer: 'http://localhost:4000/t/demo', scopesSupported: ['notes:read'] })).toEqual({
      resource: 'http://localhost:3001/mcp',
      authorization_servers: ['http://localhost:4000/t/demo'],
      scopes_supported: ['notes:read'],
      bearer_methods_supported: ['header'],
    });
    for (const resource of ['mcp', 'ftp://host/x', 'http://host/mcp#f', 'http://host/mcp?q=1', 'http://u:p@host/mcp']) {
      expect(() => protectedResourceMetadata({ resource, issuer: 'https://as' }), resource).toThrow(TypeError);
    }
    expect(() => protectedResourceMetadata({ resource: 'https://host/mcp', issuer: 'https://as', scopesSupported: ['a b'] })).toThrow(TypeError);
  });
});

describe('authorizeBearerRequest and the error responses', () => {
  it('hands the handler an AuthInfo without the raw token unless exposeToken is set', async () => {
    const hidden = await authorizeBearerRequest(options(), { authorization: 'Bearer abc' });
    expect(hidden).toEqual({ ok: true, authInfo: { ...info, token: '' } });
    const shown = await authorizeBearerRequest(options({ exposeToken: true }), { authorization: 'Bearer abc' });
    expect(shown).toEqual({ ok: true, authInfo: { ...info, token: 'abc' } });
  });

  it('checks the route and per-request scopes', async () => {
    const result = await authorizeBearerRequest(options({ requiredScopes: ['notes:read'] }), { authorization: 'Bearer abc', requiredScopes: ['notes:write'] });
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.response.status).toBe(403);
      expect(result.response.headers['www-authenticate']).toContain('scope="notes:read notes:write"');
    }
  });

  it("names only the operation's scopes on 403 when stepUpScopes is 'required'", () => {
    const error = new InsufficientScopeError(['notes:write'], ['notes:write'], ['notes:read', 'profile']);
    expect(bearerErrorResponse(options(), error).headers['www-authenticate']).toContain('scope="notes:read profile notes:write"');
    expect(bearerErrorResponse(options({ stepUpScopes: 'required' }), error).headers['www-authenticate']).toContain('scope="notes:write"');
  });

  it('answers 500 without details for an unexpected verifier failure, and tells onError', async () => {
    const seen: unknown[] = [];
    const broken: TokenVerifier = { verifyAccessToken: async () => { throw new Error('database password is hunter2'); } };
    const result = await authorizeBearerRequest(options({ verifier: broken, onError: (e) => seen.push(e) }), { authorization: 'Bearer abc' });
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.response.status).toBe(500);
      expect(result.response.body).not.toContain('hunter2');
      expect(result.response.headers['www-authenticate']).toBeUndefined();
    }
    expect(seen).toHaveLength(1);
  });

  it('maps invalid_token and invalid_request to 401 with no-store', () => {
    const invalid = bearerErrorResponse(options(), new InvalidTokenError('ERR_TOKEN_EXPIRED', 'expired'));
    expect(invalid.status).toBe(401);
    expect(invalid.headers['cache-control']).toBe('no-store');
    expect(JSON.parse(invalid.body ?? '')).toEqual({ error: 'invalid_token', error_description: 'expired' });
    const request = bearerErrorResponse(options(), new InvalidRequestError('ERR_AUTHORIZATION_MALFORMED', 'more than one token'));
    expect(request.headers['www-authenticate']).toContain('error="invalid_request"');
  });
});

describe('requireScopes', () => {
  it('names the missing scopes and keeps the required and granted ones for the challenge', () => {
    expect(() => requireScopes(info, ['notes:read'])).not.toThrow();
    try {
      requireScopes(info, ['notes:read', 'notes:write', 'notes:admin']);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InsufficientScopeError);
      expect(error).toMatchObject({
        code: 'ERR_INSUFFICIENT_SCOPE',
        status: 403,
        missingScopes: ['notes:write', 'notes:admin'],
        requiredScopes: ['notes:read', 'notes:write', 'notes:admin'],
        grantedScopes: ['notes:read'],
        message: 'missing scope: notes:write notes:admin',
      });
    }
  });
});

describe('errors', () => {
  it("are the MCP SDK's OAuth errors too, so the SDK's own bearer middleware maps them to 401/403", () => {
    const invalid = new InvalidTokenError('ERR_TOKEN_EXPIRED', 'expired');
    expect(invalid).toBeInstanceOf(sdkErrors.InvalidTokenError);
    expect(invalid.toResponseObject()).toEqual({ error: 'invalid_token', error_description: 'expired' });
    expect(new InsufficientScopeError(['a'], ['a'])).toBeInstanceOf(sdkErrors.InsufficientScopeError);
    expect(new InvalidRequestError('ERR_TOKEN_IN_QUERY', 'x').errorCode).toBe('invalid_request');
    expect(new VerifierUnavailableError('down')).toBeInstanceOf(sdkErrors.ServerError);
    expect(invalid.name).toBe('InvalidTokenError');
  });
});
