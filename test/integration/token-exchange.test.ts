import { createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify, SignJWT, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_TENANT_SETTINGS } from '../../src/demo/demo-tenant.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { basicAuth, codeRedemption, introspect as introspectAt, postToken, runCodeFlow } from '../support/oauth.ts';

const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';
const JWT = 'urn:ietf:params:oauth:token-type:jwt';
const A = 'http://localhost:4101/a';
const B = 'http://localhost:4102/b';
const C = 'http://localhost:4103/c';
const D = 'http://localhost:4104/d';
const REDIRECT = 'http://127.0.0.1:53100/callback';
const SERVICES = ['service-a', 'service-b', 'service-c', 'outsider'] as const;
type Service = (typeof SERVICES)[number];

describe('RFC 8693 token exchange on FerretDB + Redis', () => {
  let castellan: TestCastellan;
  let external: CryptoKey;
  const secrets = {} as Record<Service, string>;
  let agentTokens: Record<string, unknown>;

  const exchange = (service: Service, form: Record<string, string>) =>
    postToken(castellan.issuer, { grant_type: GRANT, ...form }, basicAuth(service, secrets[service]));
  const jwks = async () => createLocalJWKSet((await (await fetch(`${castellan.issuer}/jwks`)).json()) as JSONWebKeySet);
  const introspect = (token: string) => introspectAt(castellan.issuer, basicAuth('demo-service', castellan.clientSecret), token);

  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'token_exchange');
    const keys = await generateKeyPair('ES256', { extractable: true });
    external = keys.privateKey;
    await castellan.running.storage.tenants.update('demo', {
      settings: {
        ...DEMO_TENANT_SETTINGS,
        scopes: [...(DEMO_TENANT_SETTINGS.scopes ?? []), 'a:read', 'a:write', 'b:read', 'c:read', 'd:read'],
        resources: [
          ...(DEMO_TENANT_SETTINGS.resources ?? []),
          { uri: A, scopes: ['a:read', 'a:write'] },
          { uri: B, scopes: ['b:read', 'a:read'], accessTokenFormat: 'opaque' },
          { uri: C, scopes: ['c:read', 'a:read'] },
          { uri: D, scopes: ['d:read', 'a:read'] },
        ],
        tokenExchange: {
          enabled: true,
          maxChainDepth: 3,
          rules: [
            { client: 'service-a', audiences: [B] },
            { client: 'service-b', audiences: [C] },
            { client: 'service-c', audiences: ['*'] },
          ],
          trustedIssuers: [{ issuer: 'https://idp.partner.example', audience: `${castellan.issuer}`, jwks: { keys: [{ ...(await exportJWK(keys.publicKey)), alg: 'ES256' }] } }],
        },
      },
    });
    const clients = castellan.running.storage.modelStores('demo').durable;
    for (const service of SERVICES) {
      secrets[service] = `${service}-secret-${'x'.repeat(32)}`;
      await clients.upsert('Client', service, {
        client_id: service,
        client_secret: secrets[service],
        grant_types: [GRANT, 'client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      });
    }
    castellan.running.tenants.invalidate('demo');

    // The agent signs its user in (auth code + PKCE) and gets a token for service A.
    const flow = await runCodeFlow({
      issuer: castellan.issuer, clientId: 'demo-agent', redirectUri: REDIRECT, scope: 'openid a:read', resource: A,
      login: 'demo', password: castellan.userPassword,
    });
    const tokens = await postToken(castellan.issuer, codeRedemption(flow, 'demo-agent', REDIRECT));
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    agentTokens = tokens.body;
  });
  afterAll(async () => castellan?.stop());

  it('runs the agent story: agent → A → B → C, each hop audience-bound with a visible act chain', async () => {
    const t1 = String(agentTokens.access_token);
    const { payload: p1 } = await jwtVerify(t1, await jwks(), { audience: A });
    const user = p1.sub;

    // A calls B on the user's behalf: an opaque token for B, act = A, act.act = the agent.
    const hop1 = await exchange('service-a', { subject_token: t1, subject_token_type: ACCESS_TOKEN, resource: B });
    expect(hop1.status, JSON.stringify(hop1.body)).toBe(200);
    expect(hop1.body).toMatchObject({ issued_token_type: ACCESS_TOKEN, token_type: 'Bearer', scope: 'a:read' });
    expect(hop1.body).not.toHaveProperty('refresh_token');
    const t2 = String(hop1.body.access_token);
    expect(await introspect(t2)).toMatchObject({
      active: true, sub: user, aud: B, client_id: 'service-a', scope: 'a:read',
      act: { sub: 'service-a', act: { sub: 'demo-agent' } },
    });

    // B calls C: a JWT for C; C verifies the whole chain.
    const hop2 = await exchange('service-b', { subject_token: t2, subject_token_type: ACCESS_TOKEN, audience: C });
    expect(hop2.status, JSON.stringify(hop2.body)).toBe(200);
    const { payload } = await jwtVerify(String(hop2.body.access_token), await jwks(), { issuer: castellan.issuer, audience: C, typ: 'at+jwt' });
    expect(payload).toMatchObject({ sub: user, client_id: 'service-b', act: { sub: 'service-b', act: { sub: 'service-a', act: { sub: 'demo-agent' } } } });

    // One more hop would make four actors: over the tenant's limit of three.
    const tooDeep = await exchange('service-c', { subject_token: String(hop2.body.access_token), subject_token_type: ACCESS_TOKEN, resource: D });
    expect(tooDeep.status).toBe(400);
    expect(tooDeep.body).toMatchObject({ error: 'invalid_grant', error_description: expect.stringContaining('3') });

    const events = castellan.audit.filter((e) => e.type === 'token_exchange');
    expect(events.filter((e) => e.outcome === 'success').length).toBeGreaterThanOrEqual(2);
    expect(events.some((e) => e.outcome === 'failure' && e.error === 'invalid_grant')).toBe(true);
    // Audit events never carry a token.
    expect(JSON.stringify(events)).not.toContain(t1);
    expect(JSON.stringify(events)).not.toContain(t2);
  });

  it('refuses an actor towards an audience its rule does not name, and a client with no rule', async () => {
    const t1 = String(agentTokens.access_token);
    const wrongAudience = await exchange('service-a', { subject_token: t1, subject_token_type: ACCESS_TOKEN, resource: C });
    expect(wrongAudience).toMatchObject({ status: 400, body: { error: 'unauthorized_client' } });
    const outsider = await exchange('outsider', { subject_token: t1, subject_token_type: ACCESS_TOKEN, resource: B });
    expect(outsider).toMatchObject({ status: 400, body: { error: 'unauthorized_client' } });
  });

  it('never grants more scope than the subject token carried', async () => {
    const t1 = String(agentTokens.access_token);
    const escalation = await exchange('service-a', { subject_token: t1, subject_token_type: ACCESS_TOKEN, resource: B, scope: 'a:read b:read' });
    expect(escalation).toMatchObject({ status: 400, body: { error: 'invalid_scope' } });
    const narrower = await exchange('service-a', { subject_token: t1, subject_token_type: ACCESS_TOKEN, resource: B, scope: 'a:read' });
    expect(narrower.status).toBe(200);
  });

  it('refuses unknown targets, revoked, forged and other tenants\' subject tokens', async () => {
    const t1 = String(agentTokens.access_token);
    expect(await exchange('service-c', { subject_token: t1, subject_token_type: ACCESS_TOKEN, resource: 'https://unknown.example/api' }))
      .toMatchObject({ status: 400, body: { error: 'invalid_target' } });
    expect(await exchange('service-a', { subject_token: t1, subject_token_type: ACCESS_TOKEN }))
      .toMatchObject({ status: 400, body: { error: 'invalid_target' } });

    const hop = await exchange('service-a', { subject_token: t1, subject_token_type: ACCESS_TOKEN, resource: B });
    const opaque = String(hop.body.access_token);
    await fetch(`${castellan.issuer}/token/revocation`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth('service-a', secrets['service-a']) },
      body: new URLSearchParams({ token: opaque }).toString(),
    });
    expect(await exchange('service-b', { subject_token: opaque, subject_token_type: ACCESS_TOKEN, resource: C }))
      .toMatchObject({ status: 400, body: { error: 'invalid_grant' } });

    const [header, body] = t1.split('.');
    expect(await exchange('service-a', { subject_token: `${header}.${body}.AAAA`, subject_token_type: ACCESS_TOKEN, resource: B }))
      .toMatchObject({ status: 400, body: { error: 'invalid_grant' } });

    await castellan.running.storage.tenants.create({ id: 'elsewhere', displayName: 'Elsewhere', settings: { resources: [{ uri: B, scopes: ['a:read'] }] } });
    const elsewhere = `${castellan.baseUrl}/t/elsewhere`;
    await castellan.running.storage.modelStores('elsewhere').durable.upsert('Client', 'm2m', {
      client_id: 'm2m', client_secret: 'm2m-secret-xxxxxxxxxxxxxxxxxxxxxxxx', grant_types: ['client_credentials'], response_types: [], redirect_uris: [],
    });
    const foreign = await postToken(elsewhere, { grant_type: 'client_credentials', resource: B }, basicAuth('m2m', 'm2m-secret-xxxxxxxxxxxxxxxxxxxxxxxx'));
    expect(foreign.status, JSON.stringify(foreign.body)).toBe(200);
    expect(await exchange('service-a', { subject_token: String(foreign.body.access_token), subject_token_type: ACCESS_TOKEN, resource: B }))
      .toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
  });

  it('accepts this tenant\'s id_token, and JWTs of a trusted external issuer, but not expired or untrusted ones', async () => {
    const fromIdToken = await exchange('service-a', { subject_token: String(agentTokens.id_token), subject_token_type: ID_TOKEN, resource: B });
    expect(fromIdToken.status, JSON.stringify(fromIdToken.body)).toBe(200);
    expect(await introspect(String(fromIdToken.body.access_token))).toMatchObject({ active: true, act: { sub: 'service-a' } });

    const assertion = (issuer: string, expiresIn: string | number) => new SignJWT({ sub: 'partner-user-1' })
      .setProtectedHeader({ alg: 'ES256' }).setIssuer(issuer).setAudience(castellan.issuer).setIssuedAt().setExpirationTime(expiresIn)
      .sign(external);
    const trusted = await exchange('service-a', { subject_token: await assertion('https://idp.partner.example', '5m'), subject_token_type: JWT, resource: B, scope: 'a:read' });
    expect(trusted.status, JSON.stringify(trusted.body)).toBe(200);
    expect(await introspect(String(trusted.body.access_token))).toMatchObject({ active: true, sub: 'partner-user-1' });

    const expired = await exchange('service-a', { subject_token: await assertion('https://idp.partner.example', Math.floor(Date.now() / 1000) - 600), subject_token_type: JWT, resource: B });
    expect(expired).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    const untrusted = await exchange('service-a', { subject_token: await assertion('https://stranger.example', '5m'), subject_token_type: JWT, resource: B });
    expect(untrusted).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
  });

  it('answers malformed exchanges with invalid_request', async () => {
    const t1 = String(agentTokens.access_token);
    expect(await exchange('service-a', { subject_token_type: ACCESS_TOKEN, resource: B })).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
    expect(await exchange('service-a', { subject_token: t1, resource: B })).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
    expect(await exchange('service-a', { subject_token: t1, subject_token_type: 'urn:example:weird', resource: B })).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
    expect(await exchange('service-a', { subject_token: t1, subject_token_type: ACCESS_TOKEN, resource: B, requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' }))
      .toMatchObject({ status: 400, body: { error: 'invalid_request' } });
    expect(await exchange('service-a', { subject_token: t1, subject_token_type: ACCESS_TOKEN, resource: B, audience: C }))
      .toMatchObject({ status: 400, body: { error: 'invalid_target' } });
    // An actor_token must be the requesting client's own.
    const theirs = await postToken(castellan.issuer, { grant_type: 'client_credentials' }, basicAuth('service-b', secrets['service-b']));
    expect(await exchange('service-a', { subject_token: t1, subject_token_type: ACCESS_TOKEN, resource: B, actor_token: String(theirs.body.access_token), actor_token_type: ACCESS_TOKEN }))
      .toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    const mine = await postToken(castellan.issuer, { grant_type: 'client_credentials' }, basicAuth('service-a', secrets['service-a']));
    expect((await exchange('service-a', { subject_token: t1, subject_token_type: ACCESS_TOKEN, resource: B, actor_token: String(mine.body.access_token), actor_token_type: ACCESS_TOKEN })).status).toBe(200);
  });

  it('advertises the grant in metadata', async () => {
    const metadata = (await (await fetch(`${castellan.issuer}/.well-known/openid-configuration`)).json()) as { grant_types_supported: string[] };
    expect(metadata.grant_types_supported).toContain(GRANT);
  });
});
