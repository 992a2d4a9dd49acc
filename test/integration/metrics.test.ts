import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCastellan, testEnvironment, type TestCastellan } from '../support/castellan.ts';
import { basicAuth, postToken } from '../support/oauth.ts';
import { startRedis } from '../support/redis.ts';

const MCP_RESOURCE = 'http://localhost:3001/mcp';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text exposition (samples only). */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[key ?? ''] = value ?? '';
    samples.push({ name: match[1] ?? '', labels, value: Number(match[3]) });
  }
  return samples;
}

/** The value of the one sample with this name and exactly these labels (0 when absent). */
function valueOf(samples: Sample[], name: string, labels: Record<string, string>): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v) && Object.keys(s.labels).length === Object.keys(labels).length);
  expect(found.length, `${name} ${JSON.stringify(labels)}`).toBeLessThanOrEqual(1);
  return found[0]?.value ?? 0;
}

describe('Prometheus metrics on MongoDB + Redis', () => {
  let castellan: TestCastellan;
  let metricsToken: string;

  beforeAll(async () => {
    const env = await testEnvironment('mongo+redis', 'metrics');
    metricsToken = randomBytes(32).toString('base64url');
    castellan = await startTestCastellan('mongo+redis', 'metrics', { ...env, CASTELLAN_METRICS_TOKEN: metricsToken });
  });
  afterAll(async () => castellan?.stop());

  async function scrape(): Promise<{ text: string; samples: Sample[] }> {
    const response = await fetch(`${castellan.baseUrl}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    return { text, samples: parseExposition(text) };
  }

  it('refuses /metrics without its bearer token, or with a wrong one', async () => {
    const none = await fetch(`${castellan.baseUrl}/metrics`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(await none.json()).toMatchObject({ error: 'invalid_token' });
    const wrong = await fetch(`${castellan.baseUrl}/metrics`, { headers: { authorization: `Bearer ${metricsToken.slice(1)}x` } });
    expect(wrong.status).toBe(401);
    const basic = await fetch(`${castellan.baseUrl}/metrics`, { headers: { authorization: basicAuth('metrics', metricsToken) } });
    expect(basic.status).toBe(401);
    const body = await wrong.text();
    expect(body).not.toContain('castellan_http_requests_total');
  });

  it('counts a client_credentials token by grant type, its request by route class, and times the store', async () => {
    const before = (await scrape()).samples;
    const { status, body } = await postToken(
      castellan.issuer,
      { grant_type: 'client_credentials', resource: MCP_RESOURCE, scope: 'notes:read' },
      basicAuth('demo-service', castellan.clientSecret),
    );
    expect(status).toBe(200);
    expect(typeof body.access_token).toBe('string');
    const after = (await scrape()).samples;

    const issued = { grant_type: 'client_credentials', token_type: 'access_token' };
    expect(valueOf(after, 'castellan_tokens_issued_total', issued) - valueOf(before, 'castellan_tokens_issued_total', issued)).toBe(1);
    const requests = { method: 'POST', route: 'token', status: '200' };
    expect(valueOf(after, 'castellan_http_requests_total', requests) - valueOf(before, 'castellan_http_requests_total', requests)).toBe(1);
    const latencyCount = { method: 'POST', route: 'token' };
    expect(valueOf(after, 'castellan_http_request_duration_seconds_count', latencyCount)).toBeGreaterThan(valueOf(before, 'castellan_http_request_duration_seconds_count', latencyCount));
    // The client is looked up in MongoDB (the durable store) for every token request.
    const clientFind = { store: 'durable', backend: 'mongodb', operation: 'find', model: 'Client' };
    expect(valueOf(after, 'castellan_store_operation_duration_seconds_count', clientFind)).toBeGreaterThan(valueOf(before, 'castellan_store_operation_duration_seconds_count', clientFind));
    expect(valueOf(after, 'castellan_store_operation_duration_seconds_sum', clientFind)).toBeGreaterThan(0);
    // Default process metrics are there too.
    expect(after.some((s) => s.name === 'process_cpu_user_seconds_total')).toBe(true);
  });

  it('counts errors by their OAuth code: the provider\'s and Castellan\'s own', async () => {
    const before = (await scrape()).samples;
    const refused = await postToken(
      castellan.issuer,
      { grant_type: 'client_credentials', resource: MCP_RESOURCE, scope: 'notes:read' },
      basicAuth('demo-service', 'not-the-secret'),
    );
    expect(refused.status).toBe(401);
    expect(refused.body.error).toBe('invalid_client');
    // POST to the authorization endpoint: refused by Castellan itself (invalid_request, 405).
    const post = await fetch(`${castellan.issuer}/auth`, { method: 'POST', headers: { accept: 'application/json' } });
    expect(post.status).toBe(405);
    const after = (await scrape()).samples;

    const providerError = { route: 'token', error: 'invalid_client', source: 'provider' };
    expect(valueOf(after, 'castellan_oauth_errors_total', providerError) - valueOf(before, 'castellan_oauth_errors_total', providerError)).toBe(1);
    const ownError = { route: 'authorization', error: 'invalid_request', source: 'castellan' };
    expect(valueOf(after, 'castellan_oauth_errors_total', ownError) - valueOf(before, 'castellan_oauth_errors_total', ownError)).toBe(1);
    const status401 = { method: 'POST', route: 'token', status: '401' };
    expect(valueOf(after, 'castellan_http_requests_total', status401) - valueOf(before, 'castellan_http_requests_total', status401)).toBe(1);
  });

  it('never puts a token, a secret, a tenant or a path segment in a label', async () => {
    const marker = `m${randomBytes(9).toString('hex')}`;
    const { body } = await postToken(
      castellan.issuer,
      { grant_type: 'client_credentials', resource: MCP_RESOURCE, scope: 'notes:read' },
      basicAuth('demo-service', castellan.clientSecret),
    );
    const accessToken = String(body.access_token);
    // Caller-chosen paths: an unknown tenant, an interaction id, a client id, a method.
    await fetch(`${castellan.baseUrl}/t/${marker}/token`, { method: 'POST' });
    await fetch(`${castellan.issuer}/interaction/${marker}`);
    await fetch(`${castellan.issuer}/reg/${marker}`, { headers: { authorization: `Bearer ${accessToken}` } });
    await fetch(`${castellan.baseUrl}/${marker}?token=${accessToken}`);
    await fetch(`${castellan.issuer}/token/introspection`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth('demo-service', castellan.clientSecret) },
      body: new URLSearchParams({ token: accessToken }).toString(),
    });

    const { text, samples } = await scrape();
    for (const secret of [marker, accessToken, castellan.clientSecret, metricsToken]) expect(text).not.toContain(secret);
    const ours = samples.filter((s) => s.name.startsWith('castellan_'));
    expect(ours.length).toBeGreaterThan(0);
    for (const sample of ours) {
      for (const [key, value] of Object.entries(sample.labels)) {
        expect(value, `${sample.name} ${key}`).not.toContain('/');
        expect(value, `${sample.name} ${key}`).not.toBe('demo');
        expect(value.length, `${sample.name} ${key}`).toBeLessThanOrEqual(40);
      }
    }
    // The unknown path and the unknown tenant both fall in bounded classes.
    expect(valueOf(samples, 'castellan_http_requests_total', { method: 'GET', route: 'other', status: '404' })).toBeGreaterThan(0);
    expect(samples.some((s) => s.name === 'castellan_http_requests_total' && s.labels.route === 'introspection')).toBe(true);
    expect(samples.some((s) => s.name === 'castellan_http_requests_total' && s.labels.route === 'interaction')).toBe(true);
  });

  it('answers /readyz 200 with both stores reachable', async () => {
    const response = await fetch(`${castellan.baseUrl}/readyz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ready' });
  });
});

describe('metrics without a configured token', () => {
  let castellan: TestCastellan;
  beforeAll(async () => {
    castellan = await startTestCastellan('memory', 'metrics_off');
  });
  afterAll(async () => castellan?.stop());

  it('does not serve /metrics at all', async () => {
    const response = await fetch(`${castellan.baseUrl}/metrics`, { headers: { authorization: 'Bearer anything-at-all-anything-at-all-x' } });
    expect(response.status).toBe(404);
    // ...while the registry still counts (another server's registry is separate).
    const text = await castellan.running.metrics.render();
    expect(text).toContain('castellan_http_requests_total{method="GET",route="metrics",status="404"} 1');
  });
});

describe('readiness follows the stores', () => {
  it('answers /readyz 503 with JSON when Redis is gone, while /healthz stays 200', async () => {
    // Its own Redis: the shared one must stay up for every other test.
    const redis = await startRedis();
    const env = await testEnvironment('mongo+redis', 'readyz_outage');
    const castellan = await startTestCastellan('mongo+redis', 'readyz_outage', { ...env, REDIS_URL: redis.url });
    try {
      expect((await fetch(`${castellan.baseUrl}/readyz`)).status).toBe(200);
      await redis.stop();
      const response = await fetch(`${castellan.baseUrl}/readyz`);
      expect(response.status).toBe(503);
      expect(response.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await response.json()).toEqual({ status: 'not ready' });
      expect((await fetch(`${castellan.baseUrl}/healthz`)).status).toBe(200);
    } finally {
      await castellan.stop();
      await redis.stop();
    }
  });
});
