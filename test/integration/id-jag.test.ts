import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify, SignJWT, type JSONWebKeySet, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_TENANT_SETTINGS } from '../../src/demo/demo-tenant.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { basicAuth, codeRedemption, postToken, runCodeFlow } from '../support/oauth.ts';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const ID_JAG = 'urn:ietf:params:oauth:token-type:id-jag';
const ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const CHAT = 'http://localhost:4201/chat';
const FILES = 'http://localhost:4202/files';
/** A resource demo may name, but resource-as does not have. */
const NOWHERE = 'http://localhost:4203/nowhere';
const OTHER_AS = 'https://other-as.example';
const TEST_IDP = 'https://idp.test.example';
const REDIRECT = 'http://127.0.0.1:53210/callback';
const secret = (id: string) => `${id}-secret-${'x'.repeat(32)}`;

type TokenResponse = { status: number; body: Record<string, unknown> };

/**
 * Two tenants in one Castellan: `demo` as the enterprise IdP issuing ID-JAGs, `resource-as`
 * as the authorization server of the MCP servers the client wants to reach. The MCP client
 * is `mcp-client` at demo and `mcp-client-ras` at resource-as.
 */
describe('ID-JAG: issued by one tenant, redeemed at another (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  let rasIssuer: string;
  let testIdpKey: CryptoKey;
  let strangerKey: CryptoKey;
  let idToken: string;
  let userAccessToken: string;
  let agentIdToken: string;
  let user: string;

  /** Token exchange at demo for an ID-JAG, as the given demo client. */
  const requestIdJag = (form: Record<string, string>, client = 'mcp-client') => postToken(castellan.issuer, {
    grant_type: TOKEN_EXCHANGE, requested_token_type: ID_JAG, subject_token: idToken, subject_token_type: ID_TOKEN, audience: rasIssuer, ...form,
  }, basicAuth(client, secret(client)));
  const idJagFor = async (form: Record<string, string>) => {
    const response = await requestIdJag(form);
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    return String(response.body.access_token);
  };
  /** The jwt-bearer grant at resource-as. */
  const redeem = (assertion: string, form: Record<string, string> = {}, client = 'mcp-client-ras'): Promise<TokenResponse> =>
    postToken(rasIssuer, { grant_type: JWT_BEARER, assertion, ...form }, basicAuth(client, secret(client)));
  const jwksOf = async (issuer: string) => (await (await fetch(`${issuer}/jwks`)).json()) as JSONWebKeySet;
  /** An ID-JAG of the test IdP (trusted by resource-as), with any claim or header changed. */
  const crafted = async (claims: JWTPayload = {}, options: { typ?: string; key?: CryptoKey; lifetime?: number } = {}) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({
      iss: TEST_IDP, sub: 'idp-user-7', aud: rasIssuer, client_id: 'mcp-client-ras', jti: crypto.randomUUID(),
      iat: now, exp: now + (options.lifetime ?? 120), resource: CHAT, scope: 'chat:read', ...claims,
    }).setProtectedHeader({ alg: 'ES256', typ: options.typ ?? 'oauth-id-jag+jwt' }).sign(options.key ?? testIdpKey);
  };
  const refusal = (error: string, description?: string | RegExp) => ({
    status: error === 'invalid_client' ? 401 : 400,
    body: { error, ...(description ? { error_description: expect.stringMatching(description) } : {}) },
  });

  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'id_jag');
    rasIssuer = `${castellan.baseUrl}/t/resource-as`;
    const testIdp = await generateKeyPair('ES256', { extractable: true });
    testIdpKey = testIdp.privateKey;
    strangerKey = (await generateKeyPair('ES256')).privateKey;

    // The IdP: who may ask for ID-JAGs towards which AS, and as which client there.
    await castellan.running.storage.tenants.update('demo', {
      settings: {
        ...DEMO_TENANT_SETTINGS,
        tokenExchange: {
          enabled: true,
          rules: [
            { client: 'mcp-client', audiences: [rasIssuer, OTHER_AS] },
            { client: 'unmapped-client', audiences: [rasIssuer] },
          ],
        },
        idJag: {
          issue: [
            { audience: rasIssuer, client: 'mcp-client', clientId: 'mcp-client-ras', resources: [CHAT, FILES, NOWHERE], scopes: ['chat:read', 'chat:history', 'files:read'] },
            { audience: OTHER_AS, client: 'mcp-client', scopes: ['chat:read'], signingAlgorithm: 'ES256' },
          ],
        },
      },
    });
    const demoClients = castellan.running.storage.modelStores('demo').durable;
    for (const id of ['mcp-client', 'unmapped-client']) {
      await demoClients.upsert('Client', id, {
        client_id: id, client_secret: secret(id), grant_types: ['authorization_code', TOKEN_EXCHANGE], response_types: ['code'],
        redirect_uris: [REDIRECT], token_endpoint_auth_method: 'client_secret_basic',
      });
    }
    castellan.running.tenants.invalidate('demo');

    // The resource's AS trusts demo (its published keys) and the test IdP.
    await castellan.running.storage.tenants.create({
      id: 'resource-as',
      displayName: 'Resource AS',
      settings: {
        scopes: ['chat:read', 'chat:history', 'chat:admin', 'files:read'],
        resources: [
          { uri: CHAT, scopes: ['chat:read', 'chat:history', 'chat:admin'] },
          { uri: FILES, scopes: ['files:read'], accessTokenFormat: 'opaque' },
        ],
        idJag: {
          accept: {
            enabled: true,
            trustedIssuers: [
              { issuer: castellan.issuer, jwks: await jwksOf(castellan.issuer) },
              { issuer: TEST_IDP, jwks: { keys: [{ ...(await exportJWK(testIdp.publicKey)), alg: 'ES256' }] } },
            ],
          },
        },
      },
    });
    const rasClients = castellan.running.storage.modelStores('resource-as').durable;
    for (const id of ['mcp-client-ras', 'other-client']) {
      await rasClients.upsert('Client', id, {
        client_id: id, client_secret: secret(id), grant_types: [JWT_BEARER], response_types: [], redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      });
    }
    await rasClients.upsert('Client', 'public-client', {
      client_id: 'public-client', grant_types: [JWT_BEARER], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'none',
    });

    // The user signs in to the MCP client at the IdP (code + PKCE) and the client gets an id_token.
    const flow = await runCodeFlow({
      issuer: castellan.issuer, clientId: 'mcp-client', redirectUri: REDIRECT, scope: 'openid', login: 'demo', password: castellan.userPassword,
      extra: { max_age: '3600' },
    });
    const tokens = await postToken(castellan.issuer, {
      grant_type: 'authorization_code', code: flow.code, redirect_uri: REDIRECT, code_verifier: flow.verifier,
    }, basicAuth('mcp-client', secret('mcp-client')));
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    idToken = String(tokens.body.id_token);
    userAccessToken = String(tokens.body.access_token);
    user = String(decodeJwt(idToken).sub);

    // Another client's id_token for the same user (demo-agent, the public demo client).
    const agentFlow = await runCodeFlow({
      issuer: castellan.issuer, clientId: 'demo-agent', redirectUri: REDIRECT, scope: 'openid', login: 'demo', password: castellan.userPassword,
    });
    const agentTokens = await postToken(castellan.issuer, codeRedemption(agentFlow, 'demo-agent', REDIRECT));
    agentIdToken = String(agentTokens.body.id_token);
  });
  afterAll(async () => castellan?.stop());

  it('exchanges the user\'s id_token at demo for an ID-JAG and redeems it at resource-as for a JWT access token, once', async () => {
    const issued = await requestIdJag({ resource: CHAT, scope: 'chat:read chat:history' });
    expect(issued.status, JSON.stringify(issued.body)).toBe(200);
    expect(issued.body).toEqual({
      access_token: expect.any(String), issued_token_type: ID_JAG, token_type: 'N_A', expires_in: 300, scope: 'chat:read chat:history',
    });
    const idJag = String(issued.body.access_token);
    const { payload, protectedHeader } = await jwtVerify(idJag, createLocalJWKSet(await jwksOf(castellan.issuer)), {
      issuer: castellan.issuer, audience: rasIssuer, typ: 'oauth-id-jag+jwt',
    });
    expect(protectedHeader.alg).toBe('RS256');
    expect(payload).toMatchObject({ sub: user, client_id: 'mcp-client-ras', resource: CHAT, scope: 'chat:read chat:history', jti: expect.any(String) });
    expect(payload.exp! - payload.iat!).toBe(300);
    // The user's authentication time carries over from the id_token (draft §3, auth_time).
    expect(payload.auth_time).toBeTypeOf('number');
    expect(payload.auth_time).toBe(decodeJwt(idToken).auth_time);

    const redeemed = await redeem(idJag);
    expect(redeemed.status, JSON.stringify(redeemed.body)).toBe(200);
    expect(redeemed.body).toMatchObject({ token_type: 'Bearer', scope: 'chat:read chat:history', expires_in: expect.any(Number) });
    expect(redeemed.body).not.toHaveProperty('refresh_token');
    const { payload: at } = await jwtVerify(String(redeemed.body.access_token), createLocalJWKSet(await jwksOf(rasIssuer)), {
      issuer: rasIssuer, audience: CHAT, typ: 'at+jwt',
    });
    expect(at).toMatchObject({ sub: user, client_id: 'mcp-client-ras', scope: 'chat:read chat:history' });

    // Single use.
    expect(await redeem(idJag)).toMatchObject(refusal('invalid_grant', /used already/));

    // Both sides audited, joined by the ID-JAG's jti, never carrying a token.
    const issuedEvent = castellan.audit.find((e) => e.type === 'id_jag_issue' && e.jti === payload.jti);
    expect(issuedEvent).toMatchObject({ tenant: 'demo', outcome: 'success', client: 'mcp-client', subject: user, audience: rasIssuer, targetClientId: 'mcp-client-ras', resource: CHAT });
    const redeemed1 = castellan.audit.filter((e) => e.type === 'id_jag_redeem' && e.jti === payload.jti);
    expect(redeemed1).toEqual([
      expect.objectContaining({ tenant: 'resource-as', outcome: 'success', issuer: castellan.issuer, subject: user, client: 'mcp-client-ras', resource: CHAT }),
      expect.objectContaining({ tenant: 'resource-as', outcome: 'failure', error: 'invalid_grant', reason: 'REPLAYED' }),
    ]);
    const audit = JSON.stringify(castellan.audit);
    for (const token of [idJag, idToken, String(redeemed.body.access_token)]) expect(audit).not.toContain(token);
  });

  it('issues an opaque token for an opaque resource, from an ID-JAG for the user\'s access token', async () => {
    const idJag = await idJagFor({ subject_token: userAccessToken, subject_token_type: ACCESS_TOKEN, resource: FILES });
    expect(decodeJwt(idJag)).toMatchObject({ sub: user, scope: 'chat:read chat:history files:read' });
    const redeemed = await redeem(idJag);
    expect(redeemed.status, JSON.stringify(redeemed.body)).toBe(200);
    // Only the resource's scopes come out of the assertion's.
    expect(redeemed.body.scope).toBe('files:read');
    const introspection = await fetch(`${rasIssuer}/token/introspection`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth('mcp-client-ras', secret('mcp-client-ras')) },
      body: new URLSearchParams({ token: String(redeemed.body.access_token) }).toString(),
    });
    expect(await introspection.json()).toMatchObject({ active: true, sub: user, aud: FILES, client_id: 'mcp-client-ras', scope: 'files:read' });
  });

  it('lets exactly one of 10 concurrent redemptions of one ID-JAG succeed', async () => {
    const idJag = await idJagFor({ resource: CHAT, scope: 'chat:read' });
    const results = await Promise.all(Array.from({ length: 10 }, () => redeem(idJag)));
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    for (const r of results.filter((x) => x.status !== 200)) expect(r).toMatchObject(refusal('invalid_grant', /used already/));
  });

  it('binds the ID-JAG to its client: another client is refused without spending it', async () => {
    const idJag = await idJagFor({ resource: CHAT, scope: 'chat:read' });
    expect(await redeem(idJag, {}, 'other-client')).toMatchObject(refusal('invalid_grant', /another client/));
    expect(await postToken(rasIssuer, { grant_type: JWT_BEARER, assertion: idJag, client_id: 'public-client' }))
      .toMatchObject(refusal('unauthorized_client', /confidential/));
    expect(await postToken(rasIssuer, { grant_type: JWT_BEARER, assertion: idJag }, basicAuth('mcp-client-ras', 'wrong-secret')))
      .toMatchObject(refusal('invalid_client'));
    expect((await redeem(idJag)).status).toBe(200);
  });

  it('refuses an ID-JAG for another authorization server', async () => {
    const forOther = await idJagFor({ audience: OTHER_AS });
    expect(decodeProtectedHeader(forOther).alg).toBe('ES256');
    expect(decodeJwt(forOther)).toMatchObject({ aud: OTHER_AS, client_id: 'mcp-client' });
    expect(await redeem(forOther, {}, 'mcp-client-ras')).toMatchObject(refusal('invalid_grant', /not for this authorization server/));
  });

  it('refuses expired, overlong, future, mistyped, untrusted and forged assertions', async () => {
    const now = Math.floor(Date.now() / 1000);
    expect((await redeem(await crafted())).status).toBe(200);
    expect(await redeem(await crafted({ iat: now - 400, exp: now - 200 }))).toMatchObject(refusal('invalid_grant', /expired/));
    expect(await redeem(await crafted({}, { lifetime: 3600 }))).toMatchObject(refusal('invalid_grant', /longer than 600 seconds/));
    expect(await redeem(await crafted({ iat: now + 600, exp: now + 700 }))).toMatchObject(refusal('invalid_grant', /not valid yet/));
    expect(await redeem(await crafted({}, { typ: 'JWT' }))).toMatchObject(refusal('invalid_grant', /typ/));
    expect(await redeem(await crafted({ iss: 'https://stranger.example' }, { key: strangerKey }))).toMatchObject(refusal('invalid_grant', /issuer is not trusted/));
    expect(await redeem(await crafted({}, { key: strangerKey }))).toMatchObject(refusal('invalid_grant', /signature/));
    expect(await redeem(await crafted({ jti: undefined }))).toMatchObject(refusal('invalid_grant', /jti/));
    expect(await redeem('not-a-jwt')).toMatchObject(refusal('invalid_grant', /well-formed/));
    expect(await postToken(rasIssuer, { grant_type: JWT_BEARER }, basicAuth('mcp-client-ras', secret('mcp-client-ras'))))
      .toMatchObject(refusal('invalid_request', /assertion/));
  });

  it('never grants more scope than the ID-JAG carries, nor more than demo allows the client', async () => {
    const idJag = await idJagFor({ resource: CHAT, scope: 'chat:read' });
    expect(await redeem(idJag, { scope: 'chat:read chat:admin' })).toMatchObject(refusal('invalid_scope', /chat:admin/));
    const narrower = await redeem(idJag, { scope: 'chat:read' });
    expect(narrower).toMatchObject({ status: 200, body: { scope: 'chat:read' } });
    expect(await requestIdJag({ resource: CHAT, scope: 'chat:read chat:admin' })).toMatchObject(refusal('invalid_scope', /chat:admin/));
  });

  it('refuses resources resource-as does not have, or the ID-JAG does not name', async () => {
    expect(await redeem(await idJagFor({ resource: NOWHERE }))).toMatchObject(refusal('invalid_target', /unknown resource/));
    expect(await redeem(await idJagFor({ resource: CHAT }), { resource: FILES })).toMatchObject(refusal('invalid_target', /does not grant access/));
    expect(await redeem(await crafted({ resource: undefined }))).toMatchObject(refusal('invalid_target', /name the resource/));
    expect((await redeem(await crafted({ resource: undefined }), { resource: CHAT })).status).toBe(200);
  });

  it('issues ID-JAGs only as the tenant allows: mapped client, known audience, listed resource, the client\'s own id_token', async () => {
    expect(await requestIdJag({ resource: CHAT }, 'unmapped-client')).toMatchObject(refusal('unauthorized_client', /may not request ID-JAGs/));
    expect(await requestIdJag({ audience: 'https://unknown-as.example' })).toMatchObject(refusal('invalid_target'));
    expect(await requestIdJag({ resource: 'http://localhost:4299/elsewhere' })).toMatchObject(refusal('invalid_target'));
    expect(await requestIdJag({})).toMatchObject(refusal('invalid_target', /name one of the resources/));
    expect(await requestIdJag({ resource: CHAT, subject_token: agentIdToken })).toMatchObject(refusal('invalid_grant', /aud/));
    expect(await requestIdJag({ resource: CHAT, subject_token: `${idToken.slice(0, -4)}AAAA` })).toMatchObject(refusal('invalid_grant'));
    expect(await requestIdJag({ resource: CHAT, actor_token: idToken, actor_token_type: ID_TOKEN })).toMatchObject(refusal('invalid_request', /actor_token/));
    expect(await requestIdJag({ resource: CHAT, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt' })).toMatchObject(refusal('invalid_request'));
    const failures = castellan.audit.filter((e) => e.type === 'id_jag_issue' && e.outcome === 'failure').map((e) => e.error);
    expect(failures).toEqual(expect.arrayContaining(['unauthorized_client', 'invalid_target', 'invalid_grant', 'invalid_request', 'invalid_scope']));
  });

  it('advertises the jwt-bearer grant at resource-as', async () => {
    const metadata = (await (await fetch(`${rasIssuer}/.well-known/openid-configuration`)).json()) as { grant_types_supported: string[] };
    expect(metadata.grant_types_supported).toContain(JWT_BEARER);
  });

  it('advertises ID-JAG issuance at the enterprise IdP (identity chaining)', async () => {
    const metadata = (await (await fetch(`${castellan.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(metadata.identity_chaining_requested_token_types_supported).toEqual(['urn:ietf:params:oauth:token-type:id-jag']);
  });
});
