import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BODY_LIMIT_BYTES } from '../../src/http/request-guards.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { basicAuth, pkcePair } from '../support/oauth.ts';

const FORM = 'application/x-www-form-urlencoded';
const REDIRECT = 'http://127.0.0.1:53682/callback';
/** The endpoints that read a client's body; each must survive whatever arrives there. */
const BODY_ENDPOINTS = ['/token', '/token/introspection', '/token/revocation'] as const;
/** A stack frame ("at fn (/x.ts:1:2)", "at file:///x.js:3:4", "at node:internal/..."). */
const STACK_FRAME = /\bat\s+(?:\S+\s+\()?(?:file:\/\/|node:|\/)/;

let castellan: TestCastellan;
beforeAll(async () => {
  castellan = await startTestCastellan('mongo+redis', 'security_bad_input');
});
afterAll(async () => castellan?.stop());

const service = () => basicAuth('demo-service', castellan.clientSecret);

/** RFC 6749 §5.2 error JSON with the expected status; never a stack, never a 500. */
async function expectOAuthError(
  response: Response,
  status: number,
  error?: string | readonly string[],
): Promise<Record<string, unknown>> {
  const text = await response.text();
  expect(response.status, text).toBe(status);
  expect(text).not.toMatch(STACK_FRAME);
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  const body = JSON.parse(text) as Record<string, unknown>;
  expect(typeof body.error, text).toBe('string');
  expect(typeof body.error_description, text).toBe('string');
  if (error !== undefined) expect([error].flat(), text).toContain(body.error);
  return body;
}

function post(url: string, body: BodyInit, headers: Record<string, string>): Promise<Response> {
  return fetch(url, { method: 'POST', headers, body, redirect: 'manual' });
}

/** Starts a code flow for demo-agent and returns the interaction page URL and its cookies. */
async function openInteraction(): Promise<{ url: string; cookie: string }> {
  const query = new URLSearchParams({
    client_id: 'demo-agent',
    response_type: 'code',
    redirect_uri: REDIRECT,
    scope: 'openid',
    state: 'st',
    code_challenge: pkcePair().challenge,
    code_challenge_method: 'S256',
  });
  const response = await fetch(`${castellan.issuer}/auth?${query}`, { redirect: 'manual' });
  const location = response.headers.get('location');
  expect(response.status).toBe(303);
  expect(location).toMatch(/\/t\/demo\/interaction\//);
  const cookie = response.headers.getSetCookie().map((line) => line.split(';')[0]).join('; ');
  return { url: new URL(location ?? '', castellan.baseUrl).href, cookie };
}

function authorizeUrl(params: Record<string, string>): string {
  return `${castellan.issuer}/auth?${new URLSearchParams({
    client_id: 'demo-agent',
    response_type: 'code',
    redirect_uri: REDIRECT,
    scope: 'openid',
    state: 'st',
    ...params,
  })}`;
}

/** An authorization error sent back to the registered redirect_uri (RFC 6749 §4.1.2.1, RFC 9207). */
async function expectErrorRedirect(response: Response, error: string): Promise<void> {
  expect(response.status).toBe(303);
  const location = new URL(response.headers.get('location') ?? 'about:blank');
  expect(`${location.origin}${location.pathname}`).toBe(REDIRECT);
  expect(location.searchParams.get('error')).toBe(error);
  expect(location.searchParams.get('state')).toBe('st');
  expect(location.searchParams.get('iss')).toBe(castellan.issuer);
  expect(location.searchParams.has('code')).toBe(false);
}

/**
 * Streams a body of unbounded length without a Content-Length (chunked), 4 KiB a
 * millisecond, until the server answers; a well-behaved client stops sending then.
 */
async function postUnboundedBody(url: string, headers: Record<string, string>): Promise<{ response: Response; sentBytes: number }> {
  let answered = false;
  let sentBytes = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (answered || sentBytes >= 8 * 1024 * 1024) {
        controller.close();
        return;
      }
      await sleep(1);
      sentBytes += 4096;
      controller.enqueue(new Uint8Array(4096).fill(0x61));
    },
  });
  const pending = fetch(url, { method: 'POST', headers, body, duplex: 'half', redirect: 'manual' } as RequestInit);
  void pending.finally(() => {
    answered = true;
  });
  const response = await pending;
  return { response, sentBytes };
}

describe('malformed bodies', () => {
  it.each(BODY_ENDPOINTS)('answers malformed form bodies at %s with 400 OAuth error JSON', async (endpoint) => {
    const bodies = ['%%%&&=&=%zz', 'grant_type=%E0%A4%A&x=%', '\u0000\u0001=\u00ff\ufffd', '&&&&', '='.repeat(1000)];
    for (const body of bodies) {
      const response = await post(`${castellan.issuer}${endpoint}`, body, { 'content-type': FORM, authorization: service() });
      await expectOAuthError(response, 400, ['invalid_request', 'unsupported_grant_type']);
    }
  });

  it('treats a garbled token as an unknown one: inactive (RFC 7662 §2.2) and revoked without error (RFC 7009 §2.2)', async () => {
    for (const token of ['%', '%E0%A4%A', '\u0000\u00ff', 'a'.repeat(4000)]) {
      const body = `token=${token}&token_type_hint=%zz`;
      const headers = { 'content-type': FORM, authorization: service() };
      const introspection = await post(`${castellan.issuer}/token/introspection`, body, headers);
      expect(introspection.status).toBe(200);
      expect(await introspection.json()).toEqual({ active: false });
      const revocation = await post(`${castellan.issuer}/token/revocation`, body, headers);
      expect(revocation.status).toBe(200);
    }
  });

  it.each(BODY_ENDPOINTS)('answers malformed JSON bodies at %s with 400 invalid_request', async (endpoint) => {
    for (const body of ['{"grant_type":', '{', 'null', '[1,2', '{"token":"\\ud800"}']) {
      const response = await post(`${castellan.issuer}${endpoint}`, body, { 'content-type': 'application/json', authorization: service() });
      await expectOAuthError(response, 400, 'invalid_request');
    }
  });

  it('refuses other content types at /token with 400 invalid_request', async () => {
    const multipart = '--b\r\nContent-Disposition: form-data; name="grant_type"\r\n\r\nclient_credentials\r\n--b--\r\n';
    const cases: Array<[string, string]> = [
      ['application/json', JSON.stringify({ grant_type: 'client_credentials' })],
      ['text/plain', 'grant_type=client_credentials'],
      ['multipart/form-data; boundary=b', multipart],
    ];
    for (const [type, body] of cases) {
      const response = await post(`${castellan.issuer}/token`, body, { 'content-type': type, authorization: service() });
      await expectOAuthError(response, 400, 'invalid_request');
    }
  });
});

describe('oversized bodies', () => {
  const oversized = `grant_type=client_credentials&x=${'a'.repeat(BODY_LIMIT_BYTES)}`;

  it.each([...BODY_ENDPOINTS, '/interaction/abcdefghijkl/login'])(
    'refuses a declared body over 32 KiB at %s with 413 before reading it',
    async (endpoint) => {
      const response = await post(`${castellan.issuer}${endpoint}`, oversized, { 'content-type': FORM, authorization: service() });
      await expectOAuthError(response, 413, 'invalid_request');
    },
  );

  it.each(BODY_ENDPOINTS)('cuts a chunked body without a length at %s and answers 4xx error JSON', async (endpoint) => {
    const { response, sentBytes } = await postUnboundedBody(`${castellan.issuer}${endpoint}`, {
      'content-type': FORM,
      authorization: service(),
    });
    // The demo tenant has the device grant, so Castellan reads /token forms itself (the
    // polling guard) and stops at 32 KiB with 413; elsewhere oidc-provider's own reader
    // stops at 56 KiB with 400 "failed to parse the request body".
    await expectOAuthError(response, endpoint === '/token' ? 413 : 400, 'invalid_request');
    expect(sentBytes).toBeLessThan(2 * 1024 * 1024);
  });

  it('cuts a chunked login form without a length with 413', async () => {
    const interaction = await openInteraction();
    const { response, sentBytes } = await postUnboundedBody(`${interaction.url}/login`, {
      'content-type': FORM,
      cookie: interaction.cookie,
    });
    await expectOAuthError(response, 413, 'invalid_request');
    expect(sentBytes).toBeLessThan(2 * 1024 * 1024);
  });
});

describe('grants and client authentication', () => {
  it('answers an unknown grant_type with unsupported_grant_type and a missing one with invalid_request', async () => {
    const unknown = await post(`${castellan.issuer}/token`, 'grant_type=urn:example:nope', { 'content-type': FORM, authorization: service() });
    await expectOAuthError(unknown, 400, 'unsupported_grant_type');
    const missing = await post(`${castellan.issuer}/token`, 'scope=notes:read', { 'content-type': FORM, authorization: service() });
    await expectOAuthError(missing, 400, 'invalid_request');
  });

  it('answers an unknown client with 401 invalid_client and a Basic challenge (RFC 6749 §5.2)', async () => {
    const basic = await post(`${castellan.issuer}/token`, 'grant_type=client_credentials', {
      'content-type': FORM,
      authorization: basicAuth('nobody', 'some-secret-value'),
    });
    expect(basic.headers.get('www-authenticate')).toMatch(/^Basic /);
    await expectOAuthError(basic, 401, 'invalid_client');
    const posted = await post(`${castellan.issuer}/token`, 'grant_type=client_credentials&client_id=nobody&client_secret=x', {
      'content-type': FORM,
    });
    await expectOAuthError(posted, 401, 'invalid_client');
  });

  it('answers a wrong client secret with 401 invalid_client', async () => {
    const response = await post(`${castellan.issuer}/token`, 'grant_type=client_credentials', {
      'content-type': FORM,
      authorization: basicAuth('demo-service', `${castellan.clientSecret}x`),
    });
    await expectOAuthError(response, 401, 'invalid_client');
  });

  it('answers a malformed Authorization header with 400 invalid_request', async () => {
    for (const authorization of ['Basic !!!', `Basic ${Buffer.from('demo-service').toString('base64')}`, `Basic ${Buffer.from('demo-service:%zz').toString('base64')}`]) {
      const response = await post(`${castellan.issuer}/token`, 'grant_type=client_credentials', { 'content-type': FORM, authorization });
      await expectOAuthError(response, 400, 'invalid_request');
    }
  });
});

describe('tenants, paths and methods', () => {
  it('answers an unknown tenant with 404 error JSON', async () => {
    await expectOAuthError(await post(`${castellan.baseUrl}/t/nope/token`, 'grant_type=client_credentials', { 'content-type': FORM }), 404);
    await expectOAuthError(await fetch(`${castellan.baseUrl}/.well-known/oauth-authorization-server/t/nope`), 404);
    await expectOAuthError(await fetch(`${castellan.baseUrl}/.well-known/openid-configuration/t/nope`), 404);
  });

  it('answers invalid tenant ids with 404 error JSON', async () => {
    for (const tenant of ['UPPER', '%ff', '%00', '-dash', 'a'.repeat(64), 'a'.repeat(4000), 'demo%2Ftoken', '..%2F']) {
      const response = await post(`${castellan.baseUrl}/t/${tenant}/token`, 'grant_type=client_credentials', { 'content-type': FORM });
      await expectOAuthError(response, 404);
    }
  });

  it('answers unknown paths, and methods no endpoint has, with 404 error JSON', async () => {
    for (const url of [
      `${castellan.baseUrl}/nope`,
      `${castellan.baseUrl}/.well-known/nope`,
      `${castellan.issuer}/nope`,
      `${castellan.issuer}/token/nope`,
      `${castellan.issuer}/token`, // GET: the token endpoint only takes POST
    ]) {
      await expectOAuthError(await fetch(url), 404);
    }
    await expectOAuthError(await fetch(`${castellan.issuer}/jwks`, { method: 'POST' }), 404);
  });

  it('answers other methods on every metadata URL with 405 and Allow: GET', async () => {
    for (const url of [
      `${castellan.baseUrl}/.well-known/oauth-authorization-server/t/demo`,
      `${castellan.baseUrl}/.well-known/openid-configuration/t/demo`,
      `${castellan.issuer}/.well-known/oauth-authorization-server`,
      `${castellan.issuer}/.well-known/openid-configuration`,
    ]) {
      for (const method of ['POST', 'PUT', 'DELETE']) {
        const response = await fetch(url, { method });
        expect(response.headers.get('allow'), `${method} ${url}`).toBe('GET');
        await expectOAuthError(response, 405, 'invalid_request');
      }
    }
  });
});

describe('authorization requests', () => {
  it('sends a request without PKCE back to the registered redirect_uri with invalid_request (OAuth 2.1 §4.1.1)', async () => {
    await expectErrorRedirect(await fetch(authorizeUrl({}), { redirect: 'manual' }), 'invalid_request');
  });

  it('sends code_challenge_method=plain back to the registered redirect_uri with invalid_request', async () => {
    const response = await fetch(authorizeUrl({ code_challenge: pkcePair().verifier, code_challenge_method: 'plain' }), { redirect: 'manual' });
    await expectErrorRedirect(response, 'invalid_request');
  });

  it('never redirects to an unregistered redirect_uri, whatever else is wrong', async () => {
    const cases: Array<Record<string, string>> = [
      { redirect_uri: 'https://evil.example/callback' },
      { redirect_uri: 'https://evil.example/callback', code_challenge: pkcePair().verifier, code_challenge_method: 'plain' },
      { redirect_uri: 'https://evil.example/callback', code_challenge: pkcePair().challenge, code_challenge_method: 'S256' },
      { redirect_uri: 'http://127.0.0.1:53682/other' },
    ];
    for (const params of cases) {
      const response = await fetch(authorizeUrl(params), { redirect: 'manual' });
      expect(response.headers.get('location')).toBeNull();
      await expectOAuthError(response, 400, 'invalid_redirect_uri');
    }
  });

  it('never redirects for an unknown client', async () => {
    const response = await fetch(authorizeUrl({ client_id: 'nobody', redirect_uri: 'https://evil.example/callback' }), { redirect: 'manual' });
    expect(response.headers.get('location')).toBeNull();
    await expectOAuthError(response, 400, 'invalid_client');
  });

  it('refuses resource values that are not absolute URIs or carry a fragment (RFC 8707 §2) with invalid_target', async () => {
    const pkce = { code_challenge: pkcePair().challenge, code_challenge_method: 'S256' };
    for (const resource of ['not-a-url', '/relative/path', 'http://localhost:3001/mcp#fragment']) {
      const token = await post(`${castellan.issuer}/token`, new URLSearchParams({ grant_type: 'client_credentials', resource }).toString(), {
        'content-type': FORM,
        authorization: service(),
      });
      await expectOAuthError(token, 400, 'invalid_target');
      await expectErrorRedirect(await fetch(authorizeUrl({ ...pkce, resource }), { redirect: 'manual' }), 'invalid_target');
    }
  });
});

describe('interactions', () => {
  it('answers an unknown interaction with 400 error JSON, with or without a live interaction cookie', async () => {
    await expectOAuthError(await fetch(`${castellan.issuer}/interaction/abcdefghijkl`), 400, 'invalid_request');
    const live = await openInteraction();
    for (const path of ['/interaction/abcdefghijkl', '/interaction/a.b', `/interaction/${'a'.repeat(100)}`, '/interaction/abcdefghijkl/steal']) {
      const response = await fetch(`${castellan.issuer}${path}`, { headers: { cookie: live.cookie }, redirect: 'manual' });
      await expectOAuthError(response, 400, 'invalid_request');
    }
  });

  it('refuses a login POST that is not a form with 415, and a GET with 405', async () => {
    const { url, cookie } = await openInteraction();
    const cases: Array<[string, string]> = [
      ['application/json', JSON.stringify({ login: 'demo', password: castellan.userPassword })],
      ['text/plain', `login=demo&password=${castellan.userPassword}`],
      ['multipart/form-data; boundary=b', '--b--\r\n'],
    ];
    for (const [type, body] of cases) {
      await expectOAuthError(await post(`${url}/login`, body, { 'content-type': type, cookie }), 415, 'invalid_request');
    }
    const get = await fetch(`${url}/login`, { headers: { cookie } });
    expect(get.headers.get('allow')).toBe('POST');
    await expectOAuthError(get, 405, 'invalid_request');
  });
});

// -- fuzz-ish: random bytes where a client controls them, bounded and local ----------------

/** mulberry32: a seeded generator, so a failure names the seed that reproduces it. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface RawResponse {
  status: number;
  body: string;
}

/**
 * node:http rather than fetch: it sends header values with bytes 0x80-0xff, which fetch
 * refuses. Content-Length is always set, so every body is framed as the client meant it.
 */
function rawRequest(agent: Agent, method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<RawResponse> {
  const { hostname, port } = new URL(castellan.baseUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: hostname === 'localhost' ? '127.0.0.1' : hostname, port, method, path, agent, headers: { ...headers, 'content-length': String(body?.length ?? 0) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('latin1') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('random input under /t/demo/', () => {
  const ENDPOINTS = [
    'token', 'token/introspection', 'token/revocation', 'auth', 'me', 'jwks', 'session/end', 'session/end/confirm',
    'interaction/abcdefghijkl', 'interaction/abcdefghijkl/login', 'interaction/abcdefghijkl/confirm', 'interaction/abcdefghijkl/abort',
    '.well-known/openid-configuration', '.well-known/oauth-authorization-server', 'reg', 'request', '',
  ];
  const CONTENT_TYPES = [
    FORM, 'application/json', 'text/plain', 'multipart/form-data; boundary=x', 'application/jwt',
    `${FORM}; charset=utf-16`, `${FORM}; charset=bogus`, 'application/json; charset=latin1',
  ];
  const HEADER_NAMES = [
    'authorization', 'cookie', 'accept', 'origin', 'dpop', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-for',
    'content-encoding', 'accept-encoding', 'if-none-match', 'range', 'accept-language', 'content-type',
  ];
  const METHODS = ['GET', 'HEAD', 'POST', 'POST', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'];

  it('answers 200 requests with random bodies, header values and paths below 500, without a stack', async () => {
    const seed = Number(process.env.CASTELLAN_FUZZ_SEED ?? randomBytes(4).readUInt32BE());
    const random = seededRandom(seed);
    const int = (n: number) => Math.floor(random() * n);
    const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T;
    const bytes = (n: number, low = 0, high = 255) => Buffer.from(Array.from({ length: n }, () => low + int(high - low + 1)));
    // Header values: visible ASCII and obs-text (0x80-0xff), as RFC 9110 §5.5 allows on the wire.
    const headerValue = () => bytes(int(120), 0x20, 0xff).toString('latin1').replace(/\x7f/g, '').trim();
    const live = await openInteraction();

    const agent = new Agent({ keepAlive: true });
    const failures: string[] = [];
    try {
      for (let i = 0; i < 200; i += 1) {
        const method = pick(METHODS);
        const headers: Record<string, string> = {};
        for (let n = int(5); n > 0; n -= 1) {
          const name = pick(HEADER_NAMES);
          const roll = random();
          headers[name] = name === 'content-type' && roll < 0.7 ? pick(CONTENT_TYPES)
            : name === 'authorization' && roll < 0.4 ? `Basic ${bytes(int(48)).toString('base64')}`
              : name === 'cookie' && roll < 0.4 ? live.cookie
                : headerValue();
        }
        const segment = random() < 0.4 ? `/${encodeURIComponent(bytes(int(16), 0x20, 0xff).toString('latin1'))}` : '';
        const query = random() < 0.5 ? `?${encodeURIComponent(bytes(int(80)).toString('latin1')).replace(/%3D/g, '=').replace(/%26/g, '&')}` : '';
        const path = `/t/demo/${pick(ENDPOINTS)}${segment}${query}`;
        const body = method === 'GET' || method === 'HEAD' ? undefined
          : pick([
            () => undefined,
            () => bytes(int(4096)),
            () => Buffer.from(`grant_type=${pick(['client_credentials', 'authorization_code', 'refresh_token', 'x'])}&token=${bytes(30, 0x21, 0x7e).toString()}&resource=${bytes(20, 0x21, 0x7e).toString()}&${bytes(12).toString('latin1')}`, 'latin1'),
            () => Buffer.from(JSON.stringify({ grant_type: int(9), token: [null, { a: bytes(8).toString('latin1') }] })),
          ])();
        const what = `#${i} ${method} ${path} ${JSON.stringify(headers)} body=${body ? JSON.stringify(body.toString('latin1').slice(0, 120)) : '-'}`;
        try {
          const response = await rawRequest(agent, method, path, headers, body);
          if (response.status >= 500 || STACK_FRAME.test(response.body)) failures.push(`${what} => ${response.status} ${response.body.slice(0, 300)}`);
        } catch (error) {
          failures.push(`${what} => no response: ${String(error)}`);
        }
      }
    } finally {
      agent.destroy();
    }
    expect(failures, `CASTELLAN_FUZZ_SEED=${seed} reproduces these`).toEqual([]);
  });
});
