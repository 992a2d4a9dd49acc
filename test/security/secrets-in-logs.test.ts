import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '../../src/config/settings.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createMemoryAuditSink } from '../../src/observability/audit.ts';
import { startCastellan, type RunningCastellan } from '../../src/server.ts';
import { testEnvironment } from '../support/castellan.ts';
import { basicAuth, codeRedemption, newBrowser, postToken, runCodeFlow } from '../support/oauth.ts';

const REDIRECT = 'http://127.0.0.1:53682/callback';
const RESOURCE = 'http://localhost:3001/mcp';

/**
 * Issue #4 item 1 / #11 item 9: passwords, codes, tokens and client secrets never appear in
 * logs or audit events. Castellan runs at log level trace on the production stores, the test
 * walks the flows (and their failures) holding every secret it saw, then scans every line.
 */
describe('secrets in logs (FerretDB + Redis, log level trace)', () => {
  const lines: string[] = [];
  const audit = createMemoryAuditSink();
  let running: RunningCastellan;
  let issuer: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    env = await testEnvironment('mongo+redis', 'secrets_in_logs');
    const settings = loadSettings({ ...env, LOG_LEVEL: 'trace' });
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    });
    running = await startCastellan(settings, createLogger('trace', sink), { audit });
    issuer = `${settings.baseUrl}/t/demo`;
  });

  afterAll(async () => {
    await running.close();
  });

  it('writes none of the secrets it handled, through sign-in, tokens and their failures', async () => {
    const password = env.CASTELLAN_DEMO_USER_PASSWORD ?? '';
    const clientSecret = env.CASTELLAN_DEMO_CLIENT_SECRET ?? '';
    const service = basicAuth('demo-service', clientSecret);
    const seen = new Set<string>([password, clientSecret]);

    // A wrong password first (its text is a secret too), then the right one.
    const browser = newBrowser();
    const wrongPassword = 'Wr0ng-but-secret-guess';
    seen.add(wrongPassword);
    const login = await browser.get(`${issuer}/auth?${new URLSearchParams({
      client_id: 'demo-agent', response_type: 'code', redirect_uri: REDIRECT, scope: 'openid',
      code_challenge: 'x'.repeat(43), code_challenge_method: 'S256', state: 's',
    })}`);
    const interaction = new URL(login.headers.get('location') ?? '', issuer).href;
    await browser.get(interaction);
    expect((await browser.postForm(`${interaction}/login`, { login: 'demo', password: wrongPassword })).status).toBe(400);

    const flow = await runCodeFlow({
      issuer, clientId: 'demo-agent', redirectUri: REDIRECT, scope: 'openid offline_access notes:read',
      resource: RESOURCE, login: 'demo', password, extra: { prompt: 'consent' },
    });
    seen.add(flow.code).add(flow.verifier);
    const tokens = await postToken(issuer, codeRedemption(flow, 'demo-agent', REDIRECT));
    expect(tokens.status).toBe(200);
    const { access_token: accessToken, refresh_token: refreshToken, id_token: idToken } = tokens.body as Record<string, string>;
    for (const secret of [accessToken, refreshToken, idToken]) seen.add(String(secret));

    // Failures that carry secrets in the request: a replayed code, a wrong client secret,
    // a rotated refresh token presented again, introspection and revocation.
    const replay = await postToken(issuer, codeRedemption(flow, 'demo-agent', REDIRECT));
    expect(replay.status).toBe(400);
    const wrongSecret = 'not-the-client-secret-but-secret';
    seen.add(wrongSecret);
    expect((await postToken(issuer, { grant_type: 'client_credentials' }, basicAuth('demo-service', wrongSecret))).status).toBe(401);
    // Opaque (no resource): introspection and revocation act on it.
    const m2m = await postToken(issuer, { grant_type: 'client_credentials' }, service);
    expect(m2m.status).toBe(200);
    seen.add(String(m2m.body.access_token));
    const introspection = await fetch(`${issuer}/token/introspection`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: service },
      body: new URLSearchParams({ token: String(m2m.body.access_token) }).toString(),
    });
    expect(introspection.status, await introspection.clone().text()).toBe(200);
    const revocation = await fetch(`${issuer}/token/revocation`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: service },
      body: new URLSearchParams({ token: String(m2m.body.access_token) }).toString(),
    });
    expect(revocation.status).toBe(200);

    // The access log saw the requests that carried the secrets (so the scan below has
    // something to scan): the replayed code (400) and the wrong client secret (401).
    const requests = lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((l) => l.msg === 'request');
    expect(requests.filter((r) => r.path === '/t/demo/token').map((r) => r.status)).toEqual(expect.arrayContaining([200, 400, 401]));
    expect(requests.some((r) => r.path === '/t/demo/token/introspection' && r.status === 200)).toBe(true);
    const logged = lines.join('\n');
    const audited = JSON.stringify(audit.events);
    for (const secret of seen) {
      expect(secret.length).toBeGreaterThan(8);
      expect(logged.includes(secret), `a secret (${secret.slice(0, 4)}…) appears in the logs`).toBe(false);
      expect(audited.includes(secret), `a secret (${secret.slice(0, 4)}…) appears in the audit events`).toBe(false);
    }
  });

  it('logs each request with a request id: the caller\'s own when it is a plain token, else a fresh one', async () => {
    const own = await fetch(`${issuer}/.well-known/openid-configuration`, { headers: { 'x-request-id': 'trace-42.abc' } });
    expect(own.headers.get('x-request-id')).toBe('trace-42.abc');
    const hostile = await fetch(`${issuer}/jwks?code=secret-in-query-123`, { headers: { 'x-request-id': 'bad id "} {"x' } });
    const fresh = hostile.headers.get('x-request-id') ?? '';
    expect(fresh).toMatch(/^[0-9a-f-]{36}$/);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const requests = lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((l) => l.msg === 'request');
    expect(requests.find((r) => r.reqId === 'trace-42.abc')).toMatchObject({ tenant: 'demo', method: 'GET', status: 200 });
    expect(requests.find((r) => r.reqId === fresh)).toMatchObject({ path: '/t/demo/jwks', status: 200 });
    expect(lines.join('\n')).not.toContain('secret-in-query-123');
  });
});
