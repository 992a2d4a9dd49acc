import { Redis } from 'ioredis';
import { decodeJwt } from 'jose';
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMongoAuditEventStore, type AuditEventStore } from '../../src/observability/audit-events.mongo.ts';
import type { AuditEvent } from '../../src/observability/audit.ts';
import { isTokenEndpointEvent } from '../../src/observability/audit-journal.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { basicAuth, codeRedemption, locationOf, newBrowser, postToken, runCodeFlow } from '../support/oauth.ts';
import { testServers } from '../support/servers.ts';

const REDIRECT = 'http://127.0.0.1:53682/callback';
const DEVICE_CODE = 'urn:ietf:params:oauth:grant-type:device_code';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
// The demo tenant's resources (src/demo/demo-tenant.ts).
const REPORTS_API = 'http://localhost:3002/api'; // opaque access tokens
const NOTES_MCP = 'http://localhost:3001/mcp'; // JWT access tokens
const GATEWAY_MCP = 'http://localhost:3003/mcp';
const DOWNSTREAM_API = 'http://localhost:3004/api'; // demo-service may exchange towards it

/*
 * Audit events of oidc-provider's own endpoints (src/observability/provider-audit.ts):
 * consent, tokens issued (every grant type) and revoked, grant revocation, client
 * registration, update and deletion — each recorded once, none carrying a token, an opaque
 * token's id, a code or a secret.
 */
describe('audit events of consent, tokens, revocation and registration (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  let mongo: MongoClient;
  let chain: AuditEventStore;
  let redis: Redis;
  beforeAll(async () => {
    redis = new Redis(testServers().redisUrl);
    castellan = await startTestCastellan('mongo+redis', 'provider_audit');
    mongo = new MongoClient(testServers().mongoUrl);
    await mongo.connect();
    chain = createMongoAuditEventStore(mongo.db(castellan.env.MONGODB_DATABASE));
  });
  afterAll(async () => {
    await castellan?.stop();
    await mongo?.close();
    redis?.disconnect();
  });

  const eventsSince = (start: number, type: string) => castellan.audit.slice(start).filter((e) => e.type === type);
  const serviceAuth = () => basicAuth('demo-service', castellan.clientSecret);

  /** Every string an answer issued, and a JWT's jti: none may appear in any event (log or chain). */
  async function expectNoneOf(issued: Record<string, unknown>, events: readonly AuditEvent[]): Promise<void> {
    const values = ['access_token', 'refresh_token', 'id_token'].map((field) => issued[field]).filter((v): v is string => typeof v === 'string');
    expect(values.length).toBeGreaterThan(0);
    const ids = values.filter((v) => v.split('.').length === 3).map((jwt) => decodeJwt(jwt).jti).filter((jti): jti is string => typeof jti === 'string');
    await castellan.running.flushAudit();
    const stored = JSON.stringify(await chain.query('demo', { limit: 500, types: ['token_issued', 'token_revoked', 'token_exchange'] }));
    const text = JSON.stringify(events);
    for (const secret of [...values, ...ids]) {
      expect(text).not.toContain(secret);
      expect(stored).not.toContain(secret);
    }
  }

  /**
   * The request awaited its event: when the answer arrives the event is in the MongoDB chain,
   * or (the token endpoints' events) in the Redis journal that feeds it; once the journal is
   * moved, it is in the chain, with its journal id.
   */
  async function expectChained(event: AuditEvent | undefined): Promise<void> {
    expect(event).toBeDefined();
    const expected = JSON.parse(JSON.stringify(event)) as Record<string, unknown>;
    const chained = async () => (await chain.query('demo', { limit: 500, types: [String(event?.type)] })).map((r) => r.event);
    if (!event || !isTokenEndpointEvent(event)) {
      expect(await chained()).toContainEqual(expected);
      return;
    }
    const journal = await redis.xrange(`${castellan.env.CASTELLAN_REDIS_PREFIX ?? ''}:audit-journal`, '-', '+');
    const held = [...journal.map(([, fields]) => JSON.parse(fields[1] ?? '{}') as unknown), ...(await chained()).map(({ journalId: _, ...rest }) => rest)];
    expect(held).toContainEqual(expected);
    await castellan.running.flushAudit();
    expect(await chained()).toContainEqual({ ...expected, journalId: expect.any(String) });
  }

  const revoke = (form: Record<string, string>, authorization?: string) => fetch(`${castellan.issuer}/token/revocation`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization ? { authorization } : {}) },
    body: new URLSearchParams(form).toString(),
  });

  it('records token_issued for client_credentials (opaque and JWT) and token_revoked for a revoked one, never a token or its id', async () => {
    const start = castellan.audit.length;
    const opaque = await postToken(castellan.issuer, { grant_type: 'client_credentials', resource: REPORTS_API, scope: 'reports:read' }, serviceAuth());
    expect(opaque.status, JSON.stringify(opaque.body)).toBe(200);
    const jwt = await postToken(castellan.issuer, { grant_type: 'client_credentials', resource: NOTES_MCP, scope: 'notes:read' }, serviceAuth());
    expect(jwt.status, JSON.stringify(jwt.body)).toBe(200);
    const issued = eventsSince(start, 'token_issued');
    expect(issued).toEqual([
      { type: 'token_issued', tenant: 'demo', outcome: 'success', grantType: 'client_credentials', client: 'demo-service', tokens: ['access_token'],
        scopes: ['reports:read'], audience: REPORTS_API, tokenType: 'Bearer', expiresIn: expect.any(Number), ip: expect.any(String) },
      expect.objectContaining({ grantType: 'client_credentials', client: 'demo-service', tokens: ['access_token'], scopes: ['notes:read'], audience: NOTES_MCP }),
    ]);
    expect(issued[0]).not.toHaveProperty('subject');
    await expectChained(issued[0]);
    await expectChained(issued[1]);

    // RFC 7009: a token unknown, or another client's, answers 200 but revokes nothing: no event.
    expect((await revoke({ token: 'no-such-token-0123456789' }, serviceAuth())).status).toBe(200);
    expect((await revoke({ client_id: 'demo-agent', token: String(opaque.body.access_token) })).status).toBe(200);
    expect(eventsSince(start, 'token_revoked')).toEqual([]);
    const revoked = await revoke({ token: String(opaque.body.access_token) }, serviceAuth());
    expect(revoked.status).toBe(200);
    const [event] = eventsSince(start, 'token_revoked');
    expect(eventsSince(start, 'token_revoked')).toEqual([
      { type: 'token_revoked', tenant: 'demo', outcome: 'success', client: 'demo-service', token: 'client_credentials', ip: expect.any(String) },
    ]);
    await expectChained(event);
    // Revoking it again finds nothing.
    expect((await revoke({ token: String(opaque.body.access_token) }, serviceAuth())).status).toBe(200);
    expect(eventsSince(start, 'token_revoked')).toHaveLength(1);
    await expectNoneOf(opaque.body, castellan.audit.slice(start));
    await expectNoneOf(jwt.body, castellan.audit.slice(start));
  });

  it('records consent given, token_issued for the code and its refresh, and the revocation of the refresh token and its grant', async () => {
    const start = castellan.audit.length;
    const flow = await runCodeFlow({
      issuer: castellan.issuer, clientId: 'demo-agent', redirectUri: REDIRECT, scope: 'openid offline_access',
      login: 'demo', password: castellan.userPassword, extra: { prompt: 'consent' },
    });
    const tokens = await postToken(castellan.issuer, codeRedemption(flow, 'demo-agent', REDIRECT));
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    const [consent] = eventsSince(start, 'consent_given');
    expect(consent).toMatchObject({ tenant: 'demo', outcome: 'success', client: 'demo-agent', grantId: expect.any(String) });
    expect(consent?.subject).toEqual(expect.any(String));
    const [codeIssued] = eventsSince(start, 'token_issued');
    expect(codeIssued).toMatchObject({
      grantType: 'authorization_code', client: 'demo-agent', subject: consent?.subject, grantId: consent?.grantId,
      tokens: ['access_token', 'refresh_token', 'id_token'], scopes: expect.arrayContaining(['openid', 'offline_access']),
    });
    await expectChained(codeIssued);

    const refreshed = await postToken(castellan.issuer, { grant_type: 'refresh_token', client_id: 'demo-agent', refresh_token: String(tokens.body.refresh_token) });
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);
    const refreshIssued = eventsSince(start, 'token_issued')[1];
    expect(refreshIssued).toMatchObject({
      grantType: 'refresh_token', client: 'demo-agent', subject: consent?.subject, grantId: consent?.grantId,
      tokens: expect.arrayContaining(['access_token', 'refresh_token']),
    });
    await expectChained(refreshIssued);

    const revoked = await revoke({ client_id: 'demo-agent', token: String(refreshed.body.refresh_token), token_type_hint: 'refresh_token' });
    expect(revoked.status).toBe(200);
    expect(eventsSince(start, 'token_revoked')).toEqual([
      { type: 'token_revoked', tenant: 'demo', outcome: 'success', client: 'demo-agent', token: 'refresh_token', subject: consent?.subject, grantId: consent?.grantId, ip: expect.any(String) },
    ]);
    expect(eventsSince(start, 'grant_revoked')).toEqual([
      expect.objectContaining({ tenant: 'demo', grantId: consent?.grantId, client: 'demo-agent' }),
    ]);
    const all = JSON.stringify(castellan.audit.slice(start));
    for (const secret of [flow.code, flow.verifier, castellan.userPassword]) expect(all).not.toContain(String(secret));
    await expectNoneOf(tokens.body, castellan.audit.slice(start));
    await expectNoneOf(refreshed.body, castellan.audit.slice(start));
  });

  it('records token_issued for the device flow (RFC 8628)', async () => {
    const start = castellan.audit.length;
    const authorization = await fetch(`${castellan.issuer}/device/auth`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: 'demo-agent', scope: 'openid notes:read', resource: NOTES_MCP }),
    });
    expect(authorization.status).toBe(200);
    const { user_code: userCode, device_code: deviceCode } = (await authorization.json()) as { user_code: string; device_code: string };
    // A person types the code, confirms, signs in and consents.
    const browser = newBrowser();
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(await (await browser.get(`${castellan.issuer}/device`)).text())?.[1] ?? '';
    expect(await (await browser.postForm(`${castellan.issuer}/device`, { xsrf, user_code: userCode })).text()).toContain('Is this the device in front of you?');
    let response = await browser.postForm(`${castellan.issuer}/device`, { xsrf, user_code: userCode, confirm: 'yes' });
    let url = `${castellan.issuer}/device`;
    for (let step = 0; step < 12 && response.status !== 200; step += 1) {
      url = locationOf(response, url);
      response = await browser.get(url);
      if (response.status === 200 && new URL(url).pathname.includes('/interaction/')) {
        const html = await response.text();
        const path = `${new URL(url).origin}${new URL(url).pathname}`;
        response = html.includes('name="password"')
          ? await browser.postForm(`${path}/login`, { login: 'demo', password: castellan.userPassword })
          : await browser.postForm(`${path}/confirm`, {});
      }
    }
    expect(response.status).toBe(200);
    const tokens = await postToken(castellan.issuer, { grant_type: DEVICE_CODE, client_id: 'demo-agent', device_code: deviceCode });
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    const issued = eventsSince(start, 'token_issued');
    expect(issued).toEqual([expect.objectContaining({
      grantType: DEVICE_CODE, client: 'demo-agent', subject: expect.any(String), grantId: expect.any(String),
      // The answer's scope: the access token's (openid went into the ID token).
      tokens: ['access_token', 'id_token'], scopes: ['notes:read'], audience: NOTES_MCP,
    })]);
    await expectChained(issued[0]);
    await expectNoneOf(tokens.body, castellan.audit.slice(start));
    expect(JSON.stringify(castellan.audit.slice(start))).not.toContain(deviceCode);
  });

  it('records both token_exchange (the exchange\'s facts) and token_issued (like every grant) for an RFC 8693 exchange', async () => {
    const flow = await runCodeFlow({
      issuer: castellan.issuer, clientId: 'demo-agent', redirectUri: REDIRECT, scope: 'notes:read', resource: GATEWAY_MCP,
      login: 'demo', password: castellan.userPassword,
    });
    const user = await postToken(castellan.issuer, codeRedemption(flow, 'demo-agent', REDIRECT));
    expect(user.status, JSON.stringify(user.body)).toBe(200);
    const start = castellan.audit.length;
    const exchanged = await postToken(castellan.issuer, {
      grant_type: TOKEN_EXCHANGE, subject_token: String(user.body.access_token), subject_token_type: ACCESS_TOKEN_TYPE, resource: DOWNSTREAM_API,
    }, serviceAuth());
    expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
    const subject = decodeJwt(String(user.body.access_token)).sub;
    expect(eventsSince(start, 'token_exchange')).toEqual([expect.objectContaining({ outcome: 'success' })]);
    const issued = eventsSince(start, 'token_issued');
    expect(issued).toEqual([expect.objectContaining({
      grantType: TOKEN_EXCHANGE, client: 'demo-service', subject, tokens: ['access_token'], scopes: ['notes:read'],
      audience: DOWNSTREAM_API, issuedTokenType: ACCESS_TOKEN_TYPE,
    })]);
    await expectChained(issued[0]);
    await expectNoneOf(exchanged.body, castellan.audit.slice(start));
    await expectNoneOf(user.body, castellan.audit.slice(start));
  });

  it('records a client registered, updated and deleted (RFC 7591/7592), never its secret', async () => {
    const start = castellan.audit.length;
    const metadata = { client_name: 'Audited', redirect_uris: ['https://audited.example/cb'], token_endpoint_auth_method: 'client_secret_basic' };
    const created = await fetch(`${castellan.issuer}/reg`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(metadata),
    });
    expect(created.status).toBe(201);
    const client = (await created.json()) as { client_id: string; client_secret: string; registration_access_token: string; registration_client_uri: string };
    const auth = { authorization: `Bearer ${client.registration_access_token}` };
    const updated = await fetch(client.registration_client_uri, {
      method: 'PUT', headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify({ ...metadata, client_id: client.client_id, client_secret: client.client_secret, client_name: 'Audited again' }),
    });
    expect(updated.status, await updated.clone().text()).toBe(200);
    const rotatedToken = ((await updated.json()) as { registration_access_token?: string }).registration_access_token ?? client.registration_access_token;
    const deleted = await fetch(client.registration_client_uri, { method: 'DELETE', headers: { authorization: `Bearer ${rotatedToken}` } });
    expect(deleted.status).toBe(204);

    for (const type of ['client_registered', 'client_updated', 'client_deleted']) {
      expect(eventsSince(start, type), type).toEqual([expect.objectContaining({ tenant: 'demo', outcome: 'success', client: client.client_id })]);
    }
    const all = JSON.stringify(castellan.audit.slice(start));
    expect(all).not.toContain(client.client_secret);
    expect(all).not.toContain(client.registration_access_token);
  });
});
