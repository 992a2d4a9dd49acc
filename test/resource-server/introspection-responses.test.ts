import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIntrospectionVerifier, InvalidTokenError, VerifierUnavailableError } from '../../src/resource-server/index.ts';
import { countingFetch, listen } from './support.ts';

/*
 * Answers Castellan does not give (sender-constrained tokens, refresh tokens typed as such,
 * broken responses), from a scripted introspection endpoint on loopback: each maps to the
 * right refusal, and the AS failing is never taken for the token failing.
 */
const RESOURCE = 'http://localhost:3002/api';

describe('introspection responses the verifier must judge', () => {
  let server: Awaited<ReturnType<typeof listen>>;
  let answer: { status: number; body: string } = { status: 200, body: '{}' };
  let lastRequest: { authorization: string | undefined; body: string } | undefined;
  beforeAll(async () => {
    server = await listen(createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => { body += chunk.toString(); });
      req.on('end', () => {
        lastRequest = { authorization: req.headers.authorization, body };
        res.writeHead(answer.status, { 'content-type': 'application/json' });
        res.end(answer.body);
      });
    }));
  });
  afterAll(async () => server?.close());

  const now = Math.floor(Date.now() / 1000);
  const active = (extra: Record<string, unknown> = {}) => ({
    status: 200,
    body: JSON.stringify({ active: true, client_id: 'c', aud: RESOURCE, scope: 'reports:read', exp: now + 60, token_type: 'Bearer', ...extra }),
  });
  const verifier = (options: { cacheTtlSeconds?: number; maxCacheEntries?: number; fetch?: typeof fetch } = {}) =>
    createIntrospectionVerifier({
      introspectionEndpoint: `http://127.0.0.1:${server.port}/introspect`,
      clientId: 'rs client', clientSecret: 's:e/c r%t', audience: RESOURCE, ...options,
    });
  const outcome = async (response: { status: number; body: string }) => {
    answer = response;
    try {
      await verifier().verifyAccessToken('opaque-token');
      return 'accepted';
    } catch (error) {
      if (error instanceof InvalidTokenError) return error.code;
      if (error instanceof VerifierUnavailableError) return 'unavailable';
      throw error;
    }
  };

  it('authenticates with client_secret_basic (form-encoded id and secret) and hints access_token', async () => {
    expect(await outcome(active())).toBe('accepted');
    const decoded = Buffer.from((lastRequest?.authorization ?? '').replace(/^Basic /, ''), 'base64').toString();
    expect(decoded.split(':').map(decodeURIComponent)).toEqual(['rs client', 's:e/c r%t']);
    expect(new URLSearchParams(lastRequest?.body)).toEqual(new URLSearchParams({ token: 'opaque-token', token_type_hint: 'access_token' }));
  });

  it('refuses what is active but not a bearer access token for us', async () => {
    expect(await outcome({ status: 200, body: JSON.stringify({ active: false }) })).toBe('ERR_TOKEN_INACTIVE');
    expect(await outcome(active({ token_type: 'refresh_token' }))).toBe('ERR_TOKEN_UNSUPPORTED');
    expect(await outcome(active({ token_type: 'DPoP' }))).toBe('ERR_TOKEN_UNSUPPORTED');
    expect(await outcome(active({ cnf: { 'x5t#S256': 'abc' } }))).toBe('ERR_TOKEN_UNSUPPORTED');
    expect(await outcome(active({ aud: undefined }))).toBe('ERR_TOKEN_AUDIENCE');
    expect(await outcome(active({ aud: ['https://x.example', RESOURCE] }))).toBe('accepted');
    expect(await outcome(active({ exp: now - 1 }))).toBe('ERR_TOKEN_EXPIRED');
    expect(await outcome(active({ nbf: now + 60 }))).toBe('ERR_TOKEN_NOT_YET_VALID');
    expect(await outcome(active({ client_id: undefined }))).toBe('ERR_TOKEN_CLAIMS');
    expect(await outcome(active({ scope: ['reports:read'] }))).toBe('ERR_TOKEN_CLAIMS');
    expect(await outcome(active({ act: { sub: 'gw', act: { sub: 'agent' } } }))).toBe('accepted');
    expect(await outcome(active({ act: { nope: true } }))).toBe('ERR_TOKEN_CLAIMS');
  });

  it('takes a broken answer from the AS for an outage (503), not for a bad token', async () => {
    expect(await outcome({ status: 500, body: '{"error":"server_error"}' })).toBe('unavailable');
    expect(await outcome({ status: 200, body: 'not json' })).toBe('unavailable');
    expect(await outcome({ status: 200, body: '{"active":"yes"}' })).toBe('unavailable');
    expect(await outcome({ status: 200, body: '[]' })).toBe('unavailable');
    expect(await outcome({ status: 200, body: JSON.stringify({ active: true, pad: 'x'.repeat(70_000) }) })).toBe('unavailable');
    expect(await outcome({ status: 401, body: '{"error":"invalid_client"}' })).toBe('unavailable');
  });

  it('keeps at most maxCacheEntries answers, dropping the least recently used', async () => {
    answer = active();
    const counter = countingFetch();
    const v = verifier({ cacheTtlSeconds: 60, maxCacheEntries: 2, fetch: counter.fetch });
    await v.verifyAccessToken('t1');
    await v.verifyAccessToken('t2');
    await v.verifyAccessToken('t1'); // hit; t2 is now the oldest
    await v.verifyAccessToken('t3'); // evicts t2
    expect(counter.calls()).toBe(3);
    await v.verifyAccessToken('t1');
    expect(counter.calls()).toBe(3);
    await v.verifyAccessToken('t2');
    expect(counter.calls()).toBe(4);
  });
});
