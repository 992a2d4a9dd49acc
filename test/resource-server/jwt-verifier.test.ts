import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createJwtVerifier,
  InvalidTokenError,
  VerifierUnavailableError,
  type JwtVerifierOptions,
} from '../../src/resource-server/index.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { freePort } from '../support/running-server.ts';
import { postToken, runCodeFlow } from '../support/oauth.ts';
import { addDemoResources, countingFetch, createOtherTenant, MCP_RESOURCE, OPAQUE_RESOURCE, refusal, serviceToken } from './support.ts';


describe('JWT access tokens (RFC 9068) from a real Castellan on FerretDB + Redis', () => {
  let castellan: TestCastellan;
  let other: { issuer: string; clientId: string; secret: string };
  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'rs_jwt');
    other = await createOtherTenant(castellan);
  });
  afterAll(async () => castellan?.stop());

  const verifier = (options: Partial<JwtVerifierOptions> = {}) =>
    createJwtVerifier({ issuer: castellan.issuer, audience: MCP_RESOURCE, ...options });
  const mcpToken = (scope = 'notes:read') => serviceToken(castellan, { resource: MCP_RESOURCE, scope });

  it('verifies a client_credentials JWT for the MCP resource and reports who it speaks for', async () => {
    const token = await mcpToken('notes:read notes:write');
    const info = await verifier().verifyAccessToken(token);
    expect(info).toMatchObject({ token, clientId: 'demo-service', scopes: ['notes:read', 'notes:write'] });
    expect(info.resource?.href).toBe(MCP_RESOURCE);
    expect(info.expiresAt).toBe(decodeJwt(token).exp);
    expect(info.extra).toMatchObject({ tokenFormat: 'jwt', sub: 'demo-service', iss: castellan.issuer });
    expect(info.extra).not.toHaveProperty('act');
  });

  it('refuses a token issued for another resource (audience)', async () => {
    await addDemoResources(castellan, [{ uri: 'http://localhost:3004/mcp', scopes: ['notes:read'], accessTokenFormat: 'jwt' }]);
    const token = await serviceToken(castellan, { resource: 'http://localhost:3004/mcp' });
    expect((await refusal(verifier().verifyAccessToken(token))).code).toBe('ERR_TOKEN_AUDIENCE');
    // and the other way round: the server at 3004 refuses the 3001 token
    const mine = await mcpToken();
    expect((await refusal(verifier({ audience: 'http://localhost:3004/mcp' }).verifyAccessToken(mine))).code).toBe('ERR_TOKEN_AUDIENCE');
  });

  it('refuses an expired token once the clock tolerance has passed (clock moved with `now`)', async () => {
    const token = await mcpToken();
    const exp = decodeJwt(token).exp ?? 0;
    // Within the 30 s tolerance: still good.
    await expect(verifier({ now: () => (exp + 29) * 1000 }).verifyAccessToken(token)).resolves.toMatchObject({ clientId: 'demo-service' });
    expect((await refusal(verifier({ now: () => (exp + 31) * 1000 }).verifyAccessToken(token))).code).toBe('ERR_TOKEN_EXPIRED');
    expect((await refusal(verifier({ now: () => (exp + 1) * 1000, clockToleranceSeconds: 0 }).verifyAccessToken(token))).code).toBe('ERR_TOKEN_EXPIRED');
  });

  it('refuses a token from another tenant of the same Castellan, even for the same resource URI', async () => {
    const foreign = await serviceToken(castellan, { resource: MCP_RESOURCE }, other.issuer, other.secret, other.clientId);
    expect(decodeJwt(foreign).aud).toBe(MCP_RESOURCE);
    // Its key is not in the demo tenant's JWKS...
    expect((await refusal(verifier().verifyAccessToken(foreign))).code).toBe('ERR_TOKEN_UNKNOWN_KEY');
    // ...and even a verifier pointed at the other tenant's keys refuses its issuer.
    const misconfigured = verifier({ jwksUri: `${other.issuer}/jwks` });
    expect((await refusal(misconfigured.verifyAccessToken(foreign))).code).toBe('ERR_TOKEN_ISSUER');
    // The other tenant's own verifier accepts it.
    await expect(createJwtVerifier({ issuer: other.issuer, audience: MCP_RESOURCE }).verifyAccessToken(foreign)).resolves.toMatchObject({ clientId: 'other-service' });
  });

  it('refuses an algorithm outside the allow-list without fetching keys', async () => {
    const token = await mcpToken();
    expect(decodeProtectedHeader(token).alg).toBe('ES256');
    const counter = countingFetch();
    const rsOnly = verifier({ algorithms: ['RS256'], fetch: counter.fetch });
    expect((await refusal(rsOnly.verifyAccessToken(token))).code).toBe('ERR_TOKEN_ALGORITHM');
    expect(counter.calls()).toBe(0);
    // `none` and HMAC can never be allowed: a JWKS holds no shared secrets.
    expect(() => verifier({ algorithms: ['none' as 'RS256'] })).toThrow(TypeError);
    expect(() => verifier({ algorithms: ['HS256' as 'RS256'] })).toThrow(TypeError);
  });

  it('refuses a Castellan-signed JWT that is not an access token (an id_token: typ is not at+jwt)', async () => {
    const redirectUri = 'http://127.0.0.1:53682/callback';
    const flow = await runCodeFlow({
      issuer: castellan.issuer, clientId: 'demo-agent', redirectUri, scope: 'openid notes:read', resource: MCP_RESOURCE,
      login: 'demo', password: castellan.userPassword,
    });
    const { status, body } = await postToken(castellan.issuer, {
      grant_type: 'authorization_code', code: flow.code, redirect_uri: redirectUri, code_verifier: flow.verifier, client_id: 'demo-agent',
    });
    expect(status, JSON.stringify(body)).toBe(200);
    const idToken = String(body.id_token);
    expect(decodeProtectedHeader(idToken).typ ?? '').not.toMatch(/at\+jwt/i);
    // Even a verifier whose audience is the client (as an id_token's is) refuses it on typ.
    const confused = verifier({ audience: 'http://demo-agent.example/', algorithms: ['ES256', 'RS256'] });
    expect((await refusal(confused.verifyAccessToken(idToken))).code).toBe('ERR_TOKEN_TYPE');
    expect((await refusal(verifier().verifyAccessToken(idToken))).code).toBe('ERR_TOKEN_TYPE');
    // The access token of the same flow is a user's token for the MCP server.
    const info = await verifier().verifyAccessToken(String(body.access_token));
    expect(info).toMatchObject({ clientId: 'demo-agent', scopes: ['notes:read'] });
    expect((info.extra as { sub?: string }).sub).toMatch(/.+/);
    expect((info.extra as { sub?: string }).sub).not.toBe('demo-agent');
  });

  it('refuses an opaque token and junk as malformed, never with an unexpected error', async () => {
    const opaque = await serviceToken(castellan, { resource: OPAQUE_RESOURCE });
    const v = verifier();
    for (const junk of [opaque, 'a.b.c', 'eyJhbGciOiJFUzI1NiJ9.e30.', 'x', '..', 'eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.e30.']) {
      const error = await refusal(v.verifyAccessToken(junk));
      expect(error, junk).toBeInstanceOf(InvalidTokenError);
    }
  });

  it('picks up a rotated signing key by refetching the JWKS on an unknown kid, at a bounded rate', async () => {
    const counter = countingFetch();
    const jwksUrl = `${castellan.issuer}/jwks`;
    const eager = verifier({ fetch: counter.fetch, jwksCooldownSeconds: 0 });
    const patient = verifier({ fetch: counter.fetch, jwksCooldownSeconds: 60 });
    await eager.verifyAccessToken(await mcpToken());
    await patient.verifyAccessToken(await mcpToken());
    expect(counter.calls(jwksUrl)).toBe(2);

    await castellan.running.keyring.rotate('demo', 'ES256');
    castellan.running.tenants.invalidate('demo');
    const fresh = await mcpToken();

    // No cooldown: the unknown kid triggers one refetch and the token verifies.
    await expect(eager.verifyAccessToken(fresh)).resolves.toMatchObject({ clientId: 'demo-service' });
    expect(counter.calls(jwksUrl)).toBe(3);
    // Within the cooldown: refused, and no refetch however many unknown kids arrive.
    expect((await refusal(patient.verifyAccessToken(fresh))).code).toBe('ERR_TOKEN_UNKNOWN_KEY');
    const [header, payload, signature] = fresh.split('.');
    for (let i = 0; i < 20; i += 1) {
      const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(header ?? '', 'base64url').toString()), kid: `made-up-${i}` })).toString('base64url');
      expect((await refusal(patient.verifyAccessToken(`${forged}.${payload}.${signature}`))).code).toBe('ERR_TOKEN_UNKNOWN_KEY');
    }
    expect(counter.calls(jwksUrl)).toBe(3);
  });

  it('answers VerifierUnavailableError, not invalid_token, when the JWKS cannot be fetched', async () => {
    const token = await mcpToken();
    const down = verifier({ jwksUri: `http://127.0.0.1:${await freePort()}/jwks`, jwksTimeoutMs: 2000 });
    expect(await refusal(down.verifyAccessToken(token))).toBeInstanceOf(VerifierUnavailableError);
    const notJwks = verifier({ jwksUri: `${castellan.baseUrl}/healthz` });
    expect(await refusal(notJwks.verifyAccessToken(token))).toBeInstanceOf(VerifierUnavailableError);
  });

  it('validates its options at construction', () => {
    expect(() => createJwtVerifier({ issuer: 'not a url', audience: MCP_RESOURCE })).toThrow(/issuer/);
    expect(() => createJwtVerifier({ issuer: castellan.issuer, audience: 'http://localhost:3001/mcp#frag' })).toThrow(/fragment/);
    expect(() => createJwtVerifier({ issuer: castellan.issuer, audience: MCP_RESOURCE, clockToleranceSeconds: -1 })).toThrow(TypeError);
  });
});
