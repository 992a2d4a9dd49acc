import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_TENANT_SETTINGS } from '../../src/demo/demo-tenant.ts';
import { hashClientSecret } from '../../src/registration/client-secrets.ts';
import { startTestCastellan, testEnvironment, type TestCastellan } from '../support/castellan.ts';
import { startRedis } from '../support/redis.ts';
import { freePort } from '../support/running-server.ts';
import { basicAuth } from '../support/oauth.ts';

/*
 * Endpoint rate limits (src/http/rate-limit.ts) with tiny limits in the demo tenant's
 * settings. The nodes trust X-Forwarded-For (as behind a proxy), so each test speaks from
 * addresses of its own (RFC 5737 documentation ranges) and starts with fresh buckets.
 */

const WINDOW = 600;
const LOW_LIMITS = {
  token: { perIp: 3, perClient: 2, windowSeconds: WINDOW },
  introspection: { perIp: 2, perClient: 2, windowSeconds: WINDOW },
  revocation: { perIp: 2, perClient: 2, windowSeconds: WINDOW },
  deviceAuthorization: { perIp: 2, perClient: 2, windowSeconds: WINDOW },
  registration: { perIp: 2, windowSeconds: WINDOW },
  login: { perIp: 2, windowSeconds: WINDOW },
};

interface Answer {
  status: number;
  retryAfter: string | null;
  body: Record<string, unknown>;
}

interface Call {
  path: string;
  ip?: string;
  forwardedFor?: string;
  form?: Record<string, string>;
  json?: Record<string, unknown>;
  authorization?: string;
}

async function call(baseUrl: string, { path, ip, forwardedFor, form, json, authorization }: Call): Promise<Answer> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (forwardedFor ?? ip) headers['x-forwarded-for'] = forwardedFor ?? ip ?? '';
  if (authorization) headers.authorization = authorization;
  if (json) headers['content-type'] = 'application/json';
  else headers['content-type'] = 'application/x-www-form-urlencoded';
  const response = await fetch(`${baseUrl}/t/demo${path}`, {
    method: 'POST',
    headers,
    body: json ? JSON.stringify(json) : new URLSearchParams(form ?? {}).toString(),
  });
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: response.status, retryAfter: response.headers.get('retry-after'), body };
}

/** A token request any public caller can make; refused by the provider (400), not by a limit. */
const BOGUS_CODE = {
  grant_type: 'authorization_code', client_id: 'demo-agent', code: 'x'.repeat(43),
  redirect_uri: 'http://127.0.0.1:5000/callback', code_verifier: 'y'.repeat(43),
};

function expectLimited(answer: Answer, what: RegExp): void {
  expect(answer.status).toBe(429);
  expect(answer.body).toEqual({ error: 'too_many_requests', error_description: expect.stringMatching(what) });
  const retryAfter = Number(answer.retryAfter);
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThan(0);
  expect(retryAfter).toBeLessThanOrEqual(WINDOW);
}

async function useLowLimits(nodes: TestCastellan[], rateLimits: Record<string, unknown> = LOW_LIMITS): Promise<void> {
  const first = nodes[0];
  if (!first) throw new Error('no node');
  await first.running.storage.tenants.update('demo', { settings: { ...DEMO_TENANT_SETTINGS, rateLimits } });
  for (const node of nodes) node.running.tenants.invalidate('demo');
}

/** A confidential client of the demo tenant (client_secret_basic unless said otherwise). */
async function addService(castellan: TestCastellan, clientId: string, method: 'client_secret_basic' | 'client_secret_post' = 'client_secret_basic'): Promise<string> {
  const secret = randomBytes(18).toString('base64url');
  await castellan.running.storage.modelStores('demo').durable.upsert('Client', clientId, {
    client_id: clientId,
    client_secret: hashClientSecret(secret),
    client_name: clientId,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: method,
  });
  return secret;
}

describe('endpoint rate limits on FerretDB + Redis, behind a trusted proxy, two nodes', () => {
  let a: TestCastellan;
  let b: TestCastellan;

  beforeAll(async () => {
    const env = { ...(await testEnvironment('mongo+redis', 'rate_limits')), CASTELLAN_TRUST_PROXY: 'true' };
    a = await startTestCastellan('mongo+redis', 'rate_limits', env);
    // Same stores, same public URL; only the port differs (as behind a load balancer).
    b = await startTestCastellan('mongo+redis', 'rate_limits', { ...env, PORT: String(await freePort()) });
    await useLowLimits([a, b]);
  });
  afterAll(async () => {
    await b?.stop();
    await a?.stop();
  });

  it('refuses the (N+1)-th token request from one address with 429, Retry-After and OAuth error JSON; another address is not affected', async () => {
    for (let i = 0; i < 3; i += 1) {
      expect((await call(a.running.url, { path: '/token', ip: '198.51.100.1', form: BOGUS_CODE })).status).toBe(400);
    }
    expectLimited(await call(a.running.url, { path: '/token', ip: '198.51.100.1', form: BOGUS_CODE }), /from this address; at most 3 per 600 seconds/);
    const other = await call(a.running.url, { path: '/token', ip: '198.51.100.2', form: BOGUS_CODE });
    expect(other.status).toBe(400);
    expect(other.body.error).toBe('invalid_grant');
  });

  it('counts the address the trusted proxy appended, whatever the client put before it', async () => {
    const spoofed = (i: number) => `203.0.113.${i + 10}, 198.51.100.3`;
    for (let i = 0; i < 3; i += 1) {
      expect((await call(a.running.url, { path: '/token', forwardedFor: spoofed(i), form: BOGUS_CODE })).status).toBe(400);
    }
    expectLimited(await call(a.running.url, { path: '/token', forwardedFor: spoofed(3), form: BOGUS_CODE }), /from this address/);
  });

  it('charges an authenticated client its own bucket, pays its address back, and leaves other clients alone', async () => {
    const secret = await addService(a, 'rl-busy');
    const otherSecret = await addService(a, 'rl-other');
    const ip = '198.51.100.4';
    const m2m = (auth: string, from = ip) => call(a.running.url, { path: '/token', ip: from, form: { grant_type: 'client_credentials' }, authorization: auth });
    expect((await m2m(basicAuth('rl-busy', secret))).status).toBe(200);
    expect((await m2m(basicAuth('rl-busy', secret))).status).toBe(200);
    expectLimited(await m2m(basicAuth('rl-busy', secret)), /from this client; at most 2 per 600 seconds/);
    // The client's bucket is the same from any address.
    expectLimited(await m2m(basicAuth('rl-busy', secret), '198.51.100.5'), /from this client/);
    // Another client from the same address is not affected.
    expect((await m2m(basicAuth('rl-other', otherSecret))).status).toBe(200);
    // The address paid only for the refused request: two of its three points are left
    // (without the pay-back the address would be over its limit by now).
    expect((await call(a.running.url, { path: '/token', ip, form: BOGUS_CODE })).status).toBe(400);
    expect((await call(a.running.url, { path: '/token', ip, form: BOGUS_CODE })).status).toBe(400);
    expectLimited(await call(a.running.url, { path: '/token', ip, form: BOGUS_CODE }), /from this address/);
  });

  it('does not let requests naming a victim client_id without its credential drain the victim\'s bucket', async () => {
    const secret = await addService(a, 'rl-victim');
    const postSecret = await addService(a, 'rl-victim-post', 'client_secret_post');
    const fakeAssertion = `e30.${Buffer.from(JSON.stringify({ sub: 'rl-victim', iss: 'rl-victim' })).toString('base64url')}.c2ln`;
    const attacks: Call[] = [
      { path: '/token', form: { grant_type: 'client_credentials' }, authorization: basicAuth('rl-victim', 'wrong') },
      { path: '/token', form: { grant_type: 'client_credentials', client_id: 'rl-victim-post', client_secret: 'wrong' } },
      {
        path: '/token',
        form: {
          grant_type: 'client_credentials', client_assertion: fakeAssertion,
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        },
      },
      { path: '/token', form: { grant_type: 'client_credentials', client_id: 'rl-victim' } },
    ];
    // From many addresses, so no address limit stops the attacker first.
    let n = 0;
    for (const attack of attacks) {
      for (let i = 0; i < 2; i += 1) {
        n += 1;
        const answer = await call(a.running.url, { ...attack, ip: `198.51.100.${100 + n}` });
        expect(answer.status).toBeGreaterThanOrEqual(400);
        expect(answer.status).not.toBe(429);
      }
    }
    // The victims still have both their points.
    for (let i = 0; i < 2; i += 1) {
      const basic = await call(a.running.url, { path: '/token', ip: '198.51.100.6', form: { grant_type: 'client_credentials' }, authorization: basicAuth('rl-victim', secret) });
      expect(basic.status).toBe(200);
      const post = await call(a.running.url, { path: '/token', ip: '198.51.100.7', form: { grant_type: 'client_credentials', client_id: 'rl-victim-post', client_secret: postSecret } });
      expect(post.status).toBe(200);
    }
    // client_secret_post clients are counted as well.
    const third = await call(a.running.url, { path: '/token', ip: '198.51.100.7', form: { grant_type: 'client_credentials', client_id: 'rl-victim-post', client_secret: postSecret } });
    expectLimited(third, /from this client/);
  });

  it('shares the counters of both nodes through Redis, per address and per client', async () => {
    const ip = '198.51.100.8';
    expect((await call(a.running.url, { path: '/token', ip, form: BOGUS_CODE })).status).toBe(400);
    expect((await call(b.running.url, { path: '/token', ip, form: BOGUS_CODE })).status).toBe(400);
    expect((await call(a.running.url, { path: '/token', ip, form: BOGUS_CODE })).status).toBe(400);
    expectLimited(await call(b.running.url, { path: '/token', ip, form: BOGUS_CODE }), /from this address/);

    const secret = await addService(a, 'rl-shared');
    const m2m = (url: string) => call(url, { path: '/token', ip: '198.51.100.9', form: { grant_type: 'client_credentials' }, authorization: basicAuth('rl-shared', secret) });
    expect((await m2m(a.running.url)).status).toBe(200);
    expect((await m2m(b.running.url)).status).toBe(200);
    expectLimited(await m2m(a.running.url), /from this client/);
  });

  it('limits introspection, revocation, device authorization, registration and sign-in per address', async () => {
    const endpoints: Array<{ name: string; request: Omit<Call, 'ip'> }> = [
      { name: 'introspection', request: { path: '/token/introspection', form: { token: 'nope', client_id: 'demo-agent' } } },
      { name: 'revocation', request: { path: '/token/revocation', form: { token: 'nope', client_id: 'demo-agent' } } },
      { name: 'device authorization', request: { path: '/device/auth', form: { client_id: 'no-such-client', scope: 'openid' } } },
      { name: 'registration', request: { path: '/reg', json: { redirect_uris: ['not a uri'] } } },
      { name: 'sign-in', request: { path: '/interaction/abcdefghijkl/login', form: { login: 'demo', password: 'wrong' } } },
    ];
    for (const [i, { name, request }] of endpoints.entries()) {
      const ip = `198.51.100.${20 + i}`;
      for (let n = 0; n < 2; n += 1) {
        const answer = await call(a.running.url, { ...request, ip });
        expect(answer.status, `${name} request ${n + 1}`).toBeGreaterThanOrEqual(200);
        expect(answer.status, `${name} request ${n + 1}`).not.toBe(429);
      }
      expectLimited(await call(a.running.url, { ...request, ip }), /from this address; at most 2 per 600 seconds/);
      // The limits are per endpoint: the token endpoint still answers this address.
      expect((await call(a.running.url, { path: '/token', ip, form: BOGUS_CODE })).status).toBe(400);
    }
  });

  it('lets a resource server that introspects with its credential go on from an address others have used up', async () => {
    const secret = await addService(a, 'rl-resource-server');
    const ip = '198.51.100.30';
    // Two anonymous requests use up the address.
    for (let n = 0; n < 2; n += 1) await call(a.running.url, { path: '/token/introspection', ip, form: { token: 'nope', client_id: 'demo-agent' } });
    expectLimited(await call(a.running.url, { path: '/token/introspection', ip, form: { token: 'nope', client_id: 'demo-agent' } }), /from this address/);
    // The address limit is checked first, so the authenticated client is refused there too...
    const refused = await call(a.running.url, { path: '/token/introspection', ip, form: { token: 'nope' }, authorization: basicAuth('rl-resource-server', secret) });
    expectLimited(refused, /from this address/);
    // ...but from a fresh address its authenticated requests cost that address nothing.
    const fresh = '198.51.100.31';
    for (let n = 0; n < 2; n += 1) {
      const answer = await call(a.running.url, { path: '/token/introspection', ip: fresh, form: { token: 'nope' }, authorization: basicAuth('rl-resource-server', secret) });
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({ active: false });
    }
    for (let n = 0; n < 2; n += 1) {
      expect((await call(a.running.url, { path: '/token/introspection', ip: fresh, form: { token: 'nope', client_id: 'demo-agent' } })).status).not.toBe(429);
    }
  });
});

describe('endpoint rate limits on the in-memory store', () => {
  const METRICS_TOKEN = randomBytes(24).toString('base64url');
  let castellan: TestCastellan;
  let unlimited: TestCastellan;

  beforeAll(async () => {
    castellan = await startTestCastellan('memory', 'rate_limits_memory', {
      ...(await testEnvironment('memory', 'rate_limits_memory')),
      CASTELLAN_METRICS_TOKEN: METRICS_TOKEN,
    });
    await useLowLimits([castellan]);
    unlimited = await startTestCastellan('memory', 'rate_limits_off', {
      ...(await testEnvironment('memory', 'rate_limits_off')),
      CASTELLAN_RATE_LIMITS: 'off',
    });
    await useLowLimits([unlimited]);
  });
  afterAll(async () => {
    await unlimited?.stop();
    await castellan?.stop();
  });

  it('refuses the (N+1)-th request, ignores X-Forwarded-For from an untrusted peer, and counts the 429 in the metrics', async () => {
    for (let i = 0; i < 3; i += 1) {
      expect((await call(castellan.running.url, { path: '/token', form: BOGUS_CODE })).status).toBe(400);
    }
    // Without CASTELLAN_TRUST_PROXY the header is the client's word: still the same address.
    expectLimited(await call(castellan.running.url, { path: '/token', ip: '198.51.100.50', form: BOGUS_CODE }), /from this address/);
    const metrics = await fetch(`${castellan.running.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    const text = await metrics.text();
    expect(text).toMatch(/castellan_oauth_errors_total\{[^}]*route="token"[^}]*error="too_many_requests"[^}]*\} 1\b/);
    expect(text).toMatch(/castellan_http_requests_total\{[^}]*route="token"[^}]*status="429"[^}]*\} 1\b/);
  });

  it('hands the form it reads on to the provider with repeated parameters kept', async () => {
    // A public client at device authorization: the form is read here (no Authorization header).
    const form = new URLSearchParams([
      ['client_id', 'demo-agent'], ['scope', 'openid'],
      ['resource', 'https://unknown.example/api'], ['resource', 'http://localhost:3001/mcp'],
    ]);
    const response = await fetch(`${castellan.issuer}/device/auth`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString(),
    });
    // Both resources reached the provider: the unknown one is refused (keeping only the last would pass).
    expect(response.status).toBe(400);
    expect(((await response.json()) as Record<string, unknown>).error).toBe('invalid_target');
  });

  it('applies no limit when CASTELLAN_RATE_LIMITS is off (benchmarks)', async () => {
    for (let i = 0; i < 6; i += 1) {
      expect((await call(unlimited.running.url, { path: '/token', form: BOGUS_CODE })).status).toBe(400);
    }
  });

  it('applies no limit for a tenant whose rateLimits are disabled', async () => {
    await useLowLimits([castellan], { ...LOW_LIMITS, enabled: false });
    try {
      for (let i = 0; i < 4; i += 1) {
        expect((await call(castellan.running.url, { path: '/token/revocation', form: { token: 'nope', client_id: 'demo-agent' } })).status).not.toBe(429);
      }
    } finally {
      await useLowLimits([castellan]);
    }
  });
});

describe('endpoint rate limits while Redis is down', () => {
  it('count per node in memory instead: no 503 for requests that need no Redis, and the limit still holds', async () => {
    const redis = await startRedis();
    let castellan: TestCastellan | undefined;
    try {
      const env = await testEnvironment('mongo+redis', 'rate_limits_outage');
      castellan = await startTestCastellan('mongo+redis', 'rate_limits_outage', { ...env, REDIS_URL: redis.url, CASTELLAN_TRUST_PROXY: 'true' });
      await useLowLimits([castellan]);
      const service = basicAuth('demo-service', castellan.clientSecret);
      // Not demo-service: a client over its limit is refused before its credential is checked.
      const wrong = basicAuth('no-such-service', 'wrong-secret');
      await redis.stop();
      // Client credentials touch only MongoDB: still served, and counted per client in memory.
      const m2m = () => call(castellan!.running.url, { path: '/token', ip: '198.51.100.60', form: { grant_type: 'client_credentials' }, authorization: service });
      expect((await m2m()).status).toBe(200);
      expect((await m2m()).status).toBe(200);
      expectLimited(await m2m(), /from this client/);
      // Failed authentications (MongoDB only) pay per address, in memory.
      for (let i = 0; i < 3; i += 1) {
        expect((await call(castellan.running.url, { path: '/token', ip: '198.51.100.61', form: { grant_type: 'client_credentials' }, authorization: wrong })).status).toBe(401);
      }
      expectLimited(await call(castellan.running.url, { path: '/token', ip: '198.51.100.61', form: { grant_type: 'client_credentials' }, authorization: wrong }), /from this address/);
    } finally {
      await castellan?.stop();
      await redis.stop().catch(() => {});
    }
  }, 60_000);
});
