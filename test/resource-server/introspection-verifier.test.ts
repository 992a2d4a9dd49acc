import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createIntrospectionVerifier,
  InvalidTokenError,
  VerifierUnavailableError,
  type IntrospectionVerifierOptions,
} from '../../src/resource-server/index.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { postToken, runCodeFlow } from '../support/oauth.ts';
import { freePort } from '../support/running-server.ts';
import { countingFetch, MCP_RESOURCE, OPAQUE_RESOURCE, refusal, revoke, serviceToken } from './support.ts';


describe('opaque access tokens through introspection (RFC 7662) on a real Castellan, FerretDB + Redis', () => {
  let castellan: TestCastellan;
  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'rs_introspection');
  });
  afterAll(async () => castellan?.stop());

  const endpoint = () => `${castellan.issuer}/token/introspection`;
  const verifier = (options: Partial<IntrospectionVerifierOptions> = {}) =>
    createIntrospectionVerifier({
      introspectionEndpoint: endpoint(),
      clientId: 'demo-service',
      clientSecret: castellan.clientSecret,
      audience: OPAQUE_RESOURCE,
      issuer: castellan.issuer,
      ...options,
    });
  const reportsToken = () => serviceToken(castellan, { resource: OPAQUE_RESOURCE, scope: 'reports:read' });

  it('accepts an active opaque token for this resource', async () => {
    const token = await reportsToken();
    const info = await verifier().verifyAccessToken(token);
    expect(info).toMatchObject({ token, clientId: 'demo-service', scopes: ['reports:read'] });
    expect(info.resource?.href).toBe(OPAQUE_RESOURCE);
    expect(info.expiresAt).toBeGreaterThan(Date.now() / 1000);
    expect(info.extra).toMatchObject({ tokenFormat: 'introspection', iss: castellan.issuer });
  });

  it('with cacheTtlSeconds 0 (the default) refuses a revoked token on its very next use', async () => {
    const counter = countingFetch();
    const v = verifier({ fetch: counter.fetch });
    const token = await reportsToken();
    await v.verifyAccessToken(token);
    await v.verifyAccessToken(token);
    expect(counter.calls()).toBe(2); // nothing cached
    await revoke(castellan, token);
    expect((await refusal(v.verifyAccessToken(token))).code).toBe('ERR_TOKEN_INACTIVE');
  });

  it('with cacheTtlSeconds N keeps accepting a revoked token for at most N seconds after introspecting it', async () => {
    let clock = Date.now();
    const counter = countingFetch();
    const v = verifier({ fetch: counter.fetch, cacheTtlSeconds: 60, now: () => clock });
    const token = await reportsToken();
    await v.verifyAccessToken(token);
    await revoke(castellan, token);
    // The documented trade: still accepted from the cache, no call to the AS...
    clock += 59_000;
    await expect(v.verifyAccessToken(token)).resolves.toMatchObject({ clientId: 'demo-service', token });
    expect(counter.calls()).toBe(1);
    // ...until the entry's TTL has passed: then the AS is asked and the revocation seen.
    clock += 2_000;
    expect((await refusal(v.verifyAccessToken(token))).code).toBe('ERR_TOKEN_INACTIVE');
    expect(counter.calls()).toBe(2);
  });

  it('never lets a cache entry outlive the token: past exp the AS is asked again, and the token refused', async () => {
    let clock = Date.now();
    const counter = countingFetch();
    const v = verifier({ fetch: counter.fetch, cacheTtlSeconds: 3600, now: () => clock });
    const token = await reportsToken();
    const info = await v.verifyAccessToken(token);
    clock = (info.expiresAt ?? 0) * 1000 + 1;
    expect((await refusal(v.verifyAccessToken(token))).code).toBe('ERR_TOKEN_EXPIRED');
    expect(counter.calls()).toBe(2);
  });

  it('remembers an inactive answer for at most a few seconds (negativeCacheTtlSeconds ≤ 5)', async () => {
    let clock = Date.now();
    const counter = countingFetch();
    const v = verifier({ fetch: counter.fetch, negativeCacheTtlSeconds: 5, now: () => clock });
    for (let i = 0; i < 3; i += 1) expect((await refusal(v.verifyAccessToken('unknown-token'))).code).toBe('ERR_TOKEN_INACTIVE');
    expect(counter.calls()).toBe(1);
    clock += 5_001;
    await refusal(v.verifyAccessToken('unknown-token'));
    expect(counter.calls()).toBe(2);
    expect(() => verifier({ negativeCacheTtlSeconds: 6 })).toThrow(TypeError);
  });

  it('refuses a token for another resource, and one bound to no resource at all', async () => {
    const token = await reportsToken();
    expect((await refusal(verifier({ audience: 'http://localhost:3009/api' }).verifyAccessToken(token))).code).toBe('ERR_TOKEN_AUDIENCE');
    const unbound = await serviceToken(castellan); // no resource: opaque, no aud
    expect((await refusal(verifier().verifyAccessToken(unbound))).code).toBe('ERR_TOKEN_AUDIENCE');
  });

  it('refuses a JWT access token (not introspectable) and a refresh token presented as a bearer token', async () => {
    const jwt = await serviceToken(castellan, { resource: MCP_RESOURCE });
    expect((await refusal(verifier({ audience: MCP_RESOURCE }).verifyAccessToken(jwt))).code).toBe('ERR_TOKEN_UNSUPPORTED');

    const redirectUri = 'http://127.0.0.1:53682/callback';
    const flow = await runCodeFlow({
      issuer: castellan.issuer, clientId: 'demo-agent', redirectUri, scope: 'openid offline_access reports:read', resource: OPAQUE_RESOURCE,
      login: 'demo', password: castellan.userPassword, extra: { prompt: 'consent' },
    });
    const { status, body } = await postToken(castellan.issuer, {
      grant_type: 'authorization_code', code: flow.code, redirect_uri: redirectUri, code_verifier: flow.verifier, client_id: 'demo-agent',
    });
    expect(status, JSON.stringify(body)).toBe(200);
    expect(typeof body.refresh_token, JSON.stringify(body)).toBe('string');
    const access = await verifier().verifyAccessToken(String(body.access_token));
    expect(access).toMatchObject({ clientId: 'demo-agent', scopes: ['reports:read'] });
    expect(access.extra?.sub).toEqual(expect.any(String));
    // Castellan's introspection of a refresh token has no aud (nor token_type): refused on audience.
    const refused = await refusal(verifier().verifyAccessToken(String(body.refresh_token)));
    expect(refused.code).toMatch(/^ERR_TOKEN_(AUDIENCE|UNSUPPORTED)$/);
  });

  it('refuses a token of another issuer when `issuer` is configured', async () => {
    const token = await reportsToken();
    expect((await refusal(verifier({ issuer: `${castellan.baseUrl}/t/other` }).verifyAccessToken(token))).code).toBe('ERR_TOKEN_ISSUER');
  });

  it('answers VerifierUnavailableError when the AS is unreachable or refuses our credentials', async () => {
    const token = await reportsToken();
    const wrongSecret = verifier({ clientSecret: 'not-the-secret' });
    const error = await refusal(wrongSecret.verifyAccessToken(token));
    expect(error).toBeInstanceOf(VerifierUnavailableError);
    expect(error.message).toMatch(/credentials/);
    const down = verifier({ introspectionEndpoint: `http://127.0.0.1:${await freePort()}/introspect`, timeoutMs: 2000 });
    expect(await refusal(down.verifyAccessToken(token))).toBeInstanceOf(VerifierUnavailableError);
  });
});
