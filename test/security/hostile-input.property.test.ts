import { Agent, request } from 'node:http';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BODY_LIMIT_BYTES } from '../../src/http/request-guards.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { basicAuth, pkcePair } from '../support/oauth.ts';

/**
 * Issue #11 item 7: random and hostile bodies, headers and query strings at every public
 * endpoint of a tenant, on one Castellan over FerretDB + Redis. Both stores are up, so no
 * answer may be a 5xx (not even 503), none may carry a stack trace or a source path, and every
 * error is OAuth error JSON unless the endpoint is HTML by design and the caller accepted HTML.
 * A failure prints fast-check's seed and path; CASTELLAN_FUZZ_SEED=<seed> replays it.
 */

const REDIRECT = 'http://127.0.0.1:53682/callback';
const NUM_RUNS = Number(process.env.CASTELLAN_FUZZ_RUNS ?? 200);
const SEED = process.env.CASTELLAN_FUZZ_SEED === undefined ? undefined : Number(process.env.CASTELLAN_FUZZ_SEED);
/** A V8 stack frame line, or a path into our sources. */
const STACK_FRAME = /\n\s+at\s|\bat\s+(?:\S+\s+\()?(?:file:\/\/|node:internal)/;
const SOURCE_PATH = /\/src\/[\w./-]+\.ts|\/node_modules\//;

let castellan: TestCastellan;
let agent: Agent;
let live: { uid: string; cookie: string };
let registered: { path: string; token: string };
/** The cookies of a device code entry page: a persisted oidc-provider session. */
let deviceCookie: string;

beforeAll(async () => {
  castellan = await startTestCastellan('mongo+redis', 'security_hostile_input');
  agent = new Agent({ keepAlive: true, maxSockets: 4 });
  // A live interaction, so interaction routes get past "unknown interaction" now and then.
  const query = new URLSearchParams({
    client_id: 'demo-agent', response_type: 'code', redirect_uri: REDIRECT, scope: 'openid', state: 'st',
    code_challenge: pkcePair().challenge, code_challenge_method: 'S256',
  });
  const started = await fetch(`${castellan.issuer}/auth?${query}`, { redirect: 'manual' });
  const location = started.headers.get('location') ?? '';
  const uid = /\/interaction\/([^/?]+)/.exec(location)?.[1];
  if (!uid) throw new Error(`no interaction: ${started.status} ${location}`);
  live = { uid, cookie: started.headers.getSetCookie().map((line) => line.split(';')[0]).join('; ') };
  const entry = await fetch(`${castellan.issuer}/device`);
  deviceCookie = entry.headers.getSetCookie().map((line) => line.split(';')[0]).join('; ');
  if (entry.status !== 200 || !deviceCookie) throw new Error(`no device session: ${entry.status}`);
  // A registered client, so the RFC 7592 client configuration endpoint has a real path and token.
  const reg = await fetch(`${castellan.issuer}/reg`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: 'fuzz', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' }),
  });
  const client = (await reg.json()) as { registration_client_uri?: string; registration_access_token?: string };
  if (reg.status !== 201 || !client.registration_client_uri) throw new Error(`registration failed: ${reg.status}`);
  registered = { path: new URL(client.registration_client_uri).pathname, token: client.registration_access_token ?? '' };
});
afterAll(async () => {
  agent?.destroy();
  await castellan?.stop();
});

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** node:http, not fetch: it sends any header bytes the HTTP grammar allows, and exact bodies. */
function rawRequest(method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<RawResponse> {
  const { port } = new URL(castellan.baseUrl);
  const sent = body === undefined ? headers : { ...headers, 'content-length': String(body.length) };
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent, headers: sent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Whether the caller would take an HTML page: what Koa's accepts('json', 'html') would pick. */
function acceptsHtmlFirst(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  return /text\/html|text\/\*/i.test(accept) && !/application\/json/i.test(accept.split(/text\/html|text\/\*/i)[0] ?? '');
}

/** The judgement every answer must pass; returns a reason when it fails. */
function judge(method: string, headers: Record<string, string>, response: RawResponse, htmlPage = false): string | undefined {
  if (response.status >= 500) return `status ${response.status}`;
  if (STACK_FRAME.test(response.body)) return 'a stack frame in the body';
  if (SOURCE_PATH.test(response.body)) return 'a source path in the body';
  for (const value of Object.values(response.headers).flat()) {
    if (value && (STACK_FRAME.test(value) || SOURCE_PATH.test(value))) return 'a stack or source path in a header';
  }
  if (response.status < 400 || method === 'HEAD' || response.body === '') return undefined;
  const type = String(response.headers['content-type'] ?? '');
  if (/^text\/html/.test(type)) {
    const accept = Object.entries(headers).find(([name]) => name.toLowerCase() === 'accept')?.[1];
    return htmlPage || acceptsHtmlFirst(accept) ? undefined : `an HTML error for accept=${JSON.stringify(accept)}`;
  }
  if (!/^application\/json/.test(type)) return `an error of content type ${JSON.stringify(type)}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(response.body);
  } catch {
    return 'an error body that is not JSON';
  }
  if (typeof parsed !== 'object' || parsed === null) return 'an error body that is not an object';
  const { error, error_description: description } = parsed as Record<string, unknown>;
  if (typeof error !== 'string' || error === '') return 'an error body without `error`';
  if (description !== undefined && typeof description !== 'string') return '`error_description` is not a string';
  return undefined;
}

async function send(method: string, path: string, headers: Record<string, string>, body: Buffer | undefined, htmlPage: boolean): Promise<void> {
  const response = await rawRequest(method, path, headers, body);
  const reason = judge(method, headers, response, htmlPage);
  if (reason) {
    throw new Error(`${method} ${path} headers=${JSON.stringify(headers)} body=${JSON.stringify(body?.toString('latin1').slice(0, 200) ?? null)}\n` +
      `=> ${reason}: ${response.status} ${String(response.headers['content-type'])} ${response.body.slice(0, 400)}`);
  }
}

async function check(property: fc.IAsyncProperty<[unknown]> | fc.IAsyncPropertyWithHooks<never>, runs = NUM_RUNS): Promise<void> {
  await fc.assert(property as fc.IAsyncProperty<[unknown]>, { numRuns: runs, seed: SEED, endOnFailure: true, verbose: false });
}

// -- arbitraries -----------------------------------------------------------------------------

/** Strings an attacker would try: injection, traversal, encodings, control bytes, huge, empty. */
const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constantFrom(
    '', ' ', '\u0000', '%00', '%', '%zz', '%E0%A4%A', '\uD800', '../../../etc/passwd', '..%2f..%2f', '<script>alert(1)</script>',
    '"><img src=x onerror=alert(1)>', "' OR '1'='1", '{"$ne":null}', '{"$where":"sleep(1000)"}', '__proto__', 'constructor',
    'javascript:alert(1)', 'http://169.254.169.254/latest/meta-data/', 'http://127.0.0.1:1/', 'file:///etc/passwd',
    'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.', 'eyJhbGciOiJIUzI1NiJ9..', 'a'.repeat(5000), '0', '-1', '1e309', 'NaN', 'null', 'true',
    '[]', '{}', 'openid'.repeat(300), 'S256', 'plain', 'none', 'urn:ietf:params:oauth:grant-type:device_code',
    'urn:ietf:params:oauth:grant-type:token-exchange', 'urn:ietf:params:oauth:grant-type:jwt-bearer', 'client_credentials',
    'authorization_code', 'refresh_token', 'demo-agent', 'demo-service', REDIRECT, `${REDIRECT}/../x`, 'WDJB-MJHT', '\r\n',
  ),
);

/** OAuth / OIDC parameter names, so random values land where the parsers look. */
const PARAM_NAMES = [
  'grant_type', 'client_id', 'client_secret', 'client_assertion', 'client_assertion_type', 'code', 'code_verifier',
  'code_challenge', 'code_challenge_method', 'redirect_uri', 'response_type', 'response_mode', 'scope', 'state', 'nonce',
  'resource', 'audience', 'refresh_token', 'token', 'token_type_hint', 'subject_token', 'subject_token_type', 'actor_token',
  'actor_token_type', 'requested_token_type', 'assertion', 'device_code', 'user_code', 'request', 'request_uri', 'prompt',
  'max_age', 'login_hint', 'id_token_hint', 'post_logout_redirect_uri', 'logout', 'xsrf', 'csrf', 'username', 'password',
  'otp', 'recovery_code', 'confirm', 'abort', 'iss', 'claims', 'ui_locales', 'acr_values', 'dpop_jkt', 'authorization_details',
];
const paramName: fc.Arbitrary<string> = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...PARAM_NAMES) }, { weight: 1, arbitrary: hostileString });
/** Name/value pairs, names repeated at times (RFC 6749 §3.1: a repeated parameter is an error). */
const params: fc.Arbitrary<[string, string][]> = fc.array(fc.tuple(paramName, hostileString), { maxLength: 8 });
const queryString: fc.Arbitrary<string> = fc.oneof(
  params.map((pairs) => new URLSearchParams(pairs).toString()),
  // Raw, possibly broken percent-encoding, as it arrives on the wire (only bytes a request line may carry).
  fc.string({ maxLength: 60 }).map((raw) => raw.replace(/[^\x21-\x7e]/g, (c) => encodeURIComponent(c)).replace(/#/g, '%23')),
);

/** Header values the wire can carry: visible ASCII, spaces and obs-text (RFC 9110 §5.5), no CR/LF. */
const headerValue: fc.Arbitrary<string> = fc.oneof(
  hostileString.map((value) => Buffer.from(value, 'utf8').toString('latin1').replace(/[\x00-\x1f\x7f]/g, '').trim()),
  fc.constantFrom(
    'Basic ', 'Basic Og==', 'Basic ' + Buffer.from('demo-service:').toString('base64'), 'Basic ' + Buffer.from(':::').toString('base64'),
    'Basic %%%', 'Bearer ', 'Bearer a b', 'DPoP x', 'Bearer ' + 'x'.repeat(4000), 'Negotiate abc', 'Basic ' + 'A'.repeat(6000),
    'text/html', 'application/json', '*/*', 'text/html;q=0, application/json', 'gzip', 'br', 'deflate', 'identity, *;q=0',
    'bytes=0-1', 'https://evil.example', 'null', 'evil.example', 'https', '1.2.3.4, 127.0.0.1', '"etag"', 'W/"x"',
  ),
);
const HEADER_NAMES = [
  'authorization', 'cookie', 'accept', 'origin', 'referer', 'dpop', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-for',
  'forwarded', 'content-encoding', 'accept-encoding', 'if-none-match', 'if-modified-since', 'range', 'accept-language',
  'x-request-id', 'user-agent', 'access-control-request-method', 'access-control-request-headers', 'x-http-method-override',
];
const headers: fc.Arbitrary<Record<string, string>> = fc.dictionary(fc.constantFrom(...HEADER_NAMES), headerValue, { maxKeys: 5 });

const CONTENT_TYPES = [
  'application/x-www-form-urlencoded', 'application/json', 'text/plain', 'multipart/form-data; boundary=x', 'application/jwt',
  'application/x-www-form-urlencoded; charset=utf-16', 'application/x-www-form-urlencoded; charset=bogus',
  'application/json; charset=latin1', 'application/xml', '*/*', ';;;', 'application/x-www-form-urlencoded, application/json',
];

/** JSON of any shape, with keys an attacker would pick (prototype pollution, Mongo operators). */
const hostileJson: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.jsonValue({ maxDepth: 3 }),
    fc.dictionary(fc.oneof(fc.constantFrom('__proto__', 'constructor', 'prototype', '$where', '$ne', '$gt', 'redirect_uris', 'jwks',
      'jwks_uri', 'grant_types', 'token_endpoint_auth_method', 'client_id', 'client_secret', 'scope', 'software_statement', 'logo_uri',
      'sector_identifier_uri', 'request_uris', 'post_logout_redirect_uris', 'response_types', 'client_name'), fc.string({ maxLength: 10 })),
      tie('value'), { maxKeys: 6 }),
    fc.array(tie('value'), { maxLength: 4 }),
    hostileString,
  ),
})).value;

/** A body of any kind: none, form pairs, JSON, JSON with __proto__ as a real key, raw bytes. */
const body: fc.Arbitrary<{ type: string | undefined; bytes: Buffer | undefined }> = fc.oneof(
  fc.constant({ type: undefined, bytes: undefined }),
  fc.tuple(fc.constantFrom(...CONTENT_TYPES), params).map(([type, pairs]) => ({ type, bytes: Buffer.from(new URLSearchParams(pairs).toString()) })),
  fc.tuple(fc.constantFrom(...CONTENT_TYPES), hostileJson).map(([type, json]) => ({ type, bytes: Buffer.from(JSON.stringify(json) ?? 'null') })),
  fc.constant({ type: 'application/json', bytes: Buffer.from('{"__proto__":{"admin":true},"constructor":{"prototype":{"x":1}},"redirect_uris":["http://127.0.0.1/cb"]}') }),
  fc.tuple(fc.option(fc.constantFrom(...CONTENT_TYPES), { nil: undefined }), fc.uint8Array({ maxLength: 2048 }))
    .map(([type, bytes]) => ({ type, bytes: Buffer.from(bytes) })),
);

interface Endpoint {
  /** The path, resolved when the test runs (live interaction, registered client). */
  path: () => string;
  methods: readonly string[];
  /** Headers every request here may carry to get past the first gate. */
  helpers?: () => Record<string, string>[];
  /**
   * A page for people by design (oidc-provider's device code entry and confirmation): its
   * errors are the page again, whatever the Accept header says. Elsewhere an HTML error is
   * only right when the caller put HTML first in Accept.
   */
  htmlPage?: boolean;
}


const tenant = (rest: string) => () => `/t/demo${rest}`;
const interaction = (rest: string) => () => `/t/demo/interaction/${live.uid}${rest}`;
const ALL_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'] as const;
const withInteractionCookie = (): Record<string, string>[] => [{}, { cookie: live.cookie }];
const withDeviceSession = (): Record<string, string>[] => [{}, { cookie: deviceCookie }];
const withClientAuth = (): Record<string, string>[] => [{}, { authorization: basicAuth('demo-service', castellan.clientSecret) }];

const GROUPS: Record<string, Endpoint[]> = {
  'token, introspection, revocation, PAR, device authorization': [
    { path: tenant('/token'), methods: ['POST', 'POST', 'GET', 'PUT'], helpers: withClientAuth },
    { path: tenant('/token/introspection'), methods: ['POST', 'GET'], helpers: withClientAuth },
    { path: tenant('/token/revocation'), methods: ['POST', 'GET'], helpers: withClientAuth },
    { path: tenant('/request'), methods: ['POST', 'GET'], helpers: withClientAuth },
    { path: tenant('/device/auth'), methods: ['POST', 'POST', 'OPTIONS'], helpers: withClientAuth },
    // GET below /device is oidc-provider's device resume route: a page for people.
    { path: tenant('/device/auth'), methods: ['GET'], htmlPage: true, helpers: withDeviceSession },
  ],
  'registration and the client configuration endpoint': [
    { path: tenant('/reg'), methods: ['POST', 'POST', 'GET', 'PUT', 'OPTIONS'] },
    {
      path: () => registered.path,
      methods: ['GET', 'PUT', 'DELETE', 'POST', 'OPTIONS'],
      helpers: (): Record<string, string>[] => [{}, { authorization: `Bearer ${registered.token}` }],
    },
    { path: tenant('/reg/unknown-client'), methods: ['GET', 'PUT', 'DELETE'] },
  ],
  'authorization, device verification, end session, userinfo': [
    { path: tenant('/auth'), methods: ['GET', 'GET', 'POST', 'HEAD'] },
    // With and without a device session: a browser without one used to meet a 500 (see test/security/README.md).
    { path: tenant('/device'), methods: ['GET', 'POST'], htmlPage: true, helpers: withDeviceSession },
    { path: tenant('/device/confirm'), methods: ['POST', 'GET'], htmlPage: true, helpers: withDeviceSession },
    { path: tenant('/session/end'), methods: ['GET', 'POST'] },
    { path: tenant('/session/end/confirm'), methods: ['POST', 'GET'] },
    { path: tenant('/me'), methods: ['GET', 'POST', 'OPTIONS'] },
  ],
  'interaction routes, account security page, upstream callback': [
    { path: interaction(''), methods: ['GET', 'POST'], helpers: withInteractionCookie },
    { path: interaction('/login'), methods: ['POST', 'POST', 'GET'], helpers: withInteractionCookie },
    { path: interaction('/confirm'), methods: ['POST', 'GET'], helpers: withInteractionCookie },
    { path: interaction('/abort'), methods: ['POST', 'GET'], helpers: withInteractionCookie },
    { path: interaction('/otp'), methods: ['POST'], helpers: withInteractionCookie },
    { path: interaction('/upstream/x'), methods: ['POST', 'GET'], helpers: withInteractionCookie },
    { path: tenant('/interaction/abcdefghijkl/login'), methods: ['POST'] },
    { path: tenant('/account/security'), methods: ['GET', 'POST', 'POST'] },
    { path: tenant('/upstream/callback'), methods: ['GET', 'POST'], helpers: withInteractionCookie },
  ],
  'metadata, JWKS, health and the root': [
    { path: tenant('/jwks'), methods: ALL_METHODS },
    { path: tenant('/.well-known/openid-configuration'), methods: ALL_METHODS },
    { path: tenant('/.well-known/oauth-authorization-server'), methods: ['GET', 'POST'] },
    { path: () => '/.well-known/oauth-authorization-server/t/demo', methods: ALL_METHODS },
    { path: () => '/.well-known/openid-configuration/t/demo', methods: ['GET', 'POST'] },
    { path: () => '/.well-known/oauth-authorization-server/t/no-such-tenant', methods: ['GET'] },
    { path: () => '/healthz', methods: ['GET', 'POST'] },
    { path: () => '/readyz', methods: ['GET', 'POST'] },
    { path: () => '/', methods: ['GET', 'POST'] },
    { path: () => '/t/%E0%A4%A/token', methods: ['GET', 'POST'] },
  ],
};

describe('hostile input at every public endpoint (FerretDB + Redis)', () => {
  for (const [group, endpoints] of Object.entries(GROUPS)) {
    it(`${group}: never a 5xx or a stack; errors are OAuth JSON unless HTML was asked for`, async () => {
      const endpointIndex = fc.nat({ max: endpoints.length - 1 });
      const request = endpointIndex.chain((index) => {
        const endpoint = endpoints[index] as Endpoint;
        const helperCount = endpoint.helpers ? 2 : 1;
        return fc.record({
          index: fc.constant(index),
          method: fc.constantFrom(...endpoint.methods),
          helper: fc.nat({ max: helperCount - 1 }),
          headers,
          query: fc.option(queryString, { nil: undefined }),
          // Mostly the endpoint itself; now and then a random segment below it.
          suffix: fc.oneof(
            { weight: 7, arbitrary: fc.constant(undefined) },
            { weight: 1, arbitrary: fc.string({ maxLength: 12 }).map((segment) => `/${encodeURIComponent(segment)}`) },
          ),
          body,
        });
      });
      await check(fc.asyncProperty(request, async (r) => {
        const endpoint = endpoints[r.index] as Endpoint;
        const gate = endpoint.helpers?.()[r.helper] ?? {};
        const sent: Record<string, string> = { ...gate, ...r.headers };
        const hasBody = r.method !== 'GET' && r.method !== 'HEAD' && r.body.bytes !== undefined;
        if (hasBody && r.body.type) sent['content-type'] = r.body.type;
        const path = `${endpoint.path()}${r.suffix ?? ''}${r.query ? `?${r.query}` : ''}`;
        await send(r.method, path, sent, hasBody ? r.body.bytes : undefined, endpoint.htmlPage === true);
      }));
    }, 60_000);
  }
});

describe('oversized and deeply nested bodies', () => {
  const POST_ENDPOINTS = [
    '/token', '/token/introspection', '/token/revocation', '/request', '/device/auth', '/reg', '/device', '/session/end/confirm',
  ];

  it('answers a declared body over the limit with 413 error JSON at every endpoint that takes a POST', async () => {
    const oversized = fc.record({
      endpoint: fc.constantFrom(...POST_ENDPOINTS, 'interaction-login', 'registered'),
      extra: fc.integer({ min: 1, max: 3 * BODY_LIMIT_BYTES }),
      type: fc.constantFrom('application/x-www-form-urlencoded', 'application/json', 'application/octet-stream'),
      fill: fc.constantFrom('a', '=', '&', '[', '{', '%'),
    });
    await check(fc.asyncProperty(oversized, async ({ endpoint, extra, type, fill }) => {
      const path = endpoint === 'interaction-login' ? `/t/demo/interaction/${live.uid}/login`
        : endpoint === 'registered' ? registered.path : `/t/demo${endpoint}`;
      const method = endpoint === 'registered' ? 'PUT' : 'POST';
      const response = await rawRequest(method, path, { 'content-type': type }, Buffer.alloc(BODY_LIMIT_BYTES + extra, fill));
      expect(response.status, `${path} ${response.body.slice(0, 200)}`).toBe(413);
      expect(judge(method, {}, response)).toBeUndefined();
    }), 25);
  }, 60_000);

  it('answers JSON nested 10,000 levels deep with a 4xx error, at registration, its configuration endpoint and the token endpoint', async () => {
    const depth = 10_000;
    const nested = [
      `${'['.repeat(depth)}${']'.repeat(depth)}`,
      `${'{"":'.repeat(6_000)}1${'}'.repeat(6_000)}`,
      `{"redirect_uris":["${REDIRECT}"],"jwks":{"keys":${'['.repeat(depth)}${']'.repeat(depth)}}}`,
      `{"redirect_uris":["${REDIRECT}"],"client_name":${'['.repeat(depth)}${']'.repeat(depth)}}`,
    ];
    const targets: { method: string; path: string; headers: Record<string, string> }[] = [
      { method: 'POST', path: '/t/demo/reg', headers: {} },
      { method: 'PUT', path: registered.path, headers: { authorization: `Bearer ${registered.token}` } },
      { method: 'POST', path: '/t/demo/token', headers: { authorization: basicAuth('demo-service', castellan.clientSecret) } },
    ];
    for (const target of targets) {
      for (const json of nested) {
        expect(json.length).toBeLessThanOrEqual(BODY_LIMIT_BYTES);
        const headers = { ...target.headers, 'content-type': 'application/json' };
        const response = await rawRequest(target.method, target.path, headers, Buffer.from(json));
        const what = `${target.method} ${target.path} ${json.slice(0, 40)}`;
        // Under the body limit, so it is parsed: refused for its shape, never a 413, never a 5xx.
        expect(response.status, `${what} ${response.body.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
        expect(response.status, what).not.toBe(413);
        expect(response.status, `${what} ${response.body.slice(0, 200)}`).toBeLessThan(500);
        expect(judge(target.method, headers, response), what).toBeUndefined();
      }
    }
    // The server is still there and well after all of that.
    const health = await rawRequest('GET', '/healthz', {});
    expect(health.status).toBe(200);
  }, 60_000);
});
