import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAddressPolicy } from '../../src/registration/cimd/address-policy.ts';
import { createMemoryDocumentCache, createRedisDocumentCache, type DocumentCache } from '../../src/registration/cimd/document-cache.ts';
import { createGuardedFetch, GuardedFetchError, type GuardedFetchOptions } from '../../src/registration/cimd/guarded-fetch.ts';
import { isMetadataDocumentFor } from '../../src/registration/cimd/metadata-document.ts';
import { deleteRedisKeys, testServers, uniqueRedisPrefix } from '../support/servers.ts';
import { makeTestPki, startDocumentServer, testLookup, type DocumentServer, type TestPki } from './fixtures/cimd-document-server.ts';

let pki: TestPki;
let otherPki: TestPki;
let server: DocumentServer;
let untrusted: DocumentServer;

beforeAll(async () => {
  pki = makeTestPki('Castellan CIMD test CA');
  otherPki = makeTestPki('Someone else CA');
  server = await startDocumentServer(pki);
  untrusted = await startDocumentServer(otherPki);
});

afterAll(async () => {
  await server?.close();
  await untrusted?.close();
});

const LOOPBACK_ALLOWED = createAddressPolicy(['127.0.0.1']).allowAddress;

function fetcher(overrides: Partial<GuardedFetchOptions> = {}) {
  const { lookup, calls } = testLookup();
  const fetch = createGuardedFetch({ allowAddress: LOOPBACK_ALLOWED, lookup, ca: pki.caCert, timeoutMs: 1000, ...overrides });
  return { fetch, lookupCalls: calls };
}

async function failure(promise: Promise<unknown>): Promise<GuardedFetchError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(GuardedFetchError);
  return error as GuardedFetchError;
}

function document(url: string, extra: Record<string, unknown> = {}) {
  return { client_id: url, client_name: 'Test agent', redirect_uris: ['http://127.0.0.1/callback'], token_endpoint_auth_method: 'none', ...extra };
}

describe('guarded fetch', () => {
  it('fetches a JSON document over https, resolving the name once and verifying the certificate by name', async () => {
    server.json('/ok.json', { hello: 'world' }, { 'cache-control': 'max-age=300' });
    const { fetch, lookupCalls } = fetcher();
    const response = await fetch(server.url('/ok.json'), { headers: { accept: 'application/json', 'user-agent': '' } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(await response.json()).toEqual({ hello: 'world' });
    expect(lookupCalls).toEqual(['cimd.test']);
  });

  it('refuses loopback by default and allows it through privateNetworkAllowlist (address or host name)', async () => {
    server.json('/loopback.json', { a: 1 });
    const refused = fetcher({ allowAddress: createAddressPolicy([]).allowAddress });
    const error = await failure(refused.fetch(server.url('/loopback.json')));
    expect(error.code).toBe('ADDRESS_REFUSED');
    expect(error.message).toContain('127.0.0.1');
    expect(server.hits('/loopback.json')).toBe(0);

    for (const allowlist of [['127.0.0.1'], ['cimd.test'], ['127.0.0.0/8']]) {
      const allowed = fetcher({ allowAddress: createAddressPolicy(allowlist).allowAddress });
      expect((await allowed.fetch(server.url('/loopback.json'))).status).toBe(200);
    }
    // An IP literal URL is judged the same way, with no DNS at all.
    const literal = fetcher({ allowAddress: createAddressPolicy([]).allowAddress });
    expect((await failure(literal.fetch(server.url('/loopback.json', '127.0.0.1')))).code).toBe('ADDRESS_REFUSED');
    expect(literal.lookupCalls).toEqual([]);
  });

  it('refuses names that resolve to metadata, private or mixed addresses, before connecting', async () => {
    const { lookup } = testLookup({
      'metadata.cimd.test': ['169.254.169.254'],
      'private.cimd.test': ['10.0.0.1'],
      'mapped.cimd.test': ['::ffff:169.254.169.254'],
      'mixed.cimd.test': ['93.184.215.14', '10.0.0.1'],
    });
    // Even a tenant that allows its link-local and private ranges never reaches the metadata service.
    const allowAddress = createAddressPolicy(['127.0.0.1', '169.254.0.0/16']).allowAddress;
    const { fetch } = fetcher({ lookup, allowAddress });
    for (const host of ['metadata.cimd.test', 'private.cimd.test', 'mapped.cimd.test', 'mixed.cimd.test']) {
      const error = await failure(fetch(server.url('/x.json', host)));
      expect(error.code, host).toBe('ADDRESS_REFUSED');
    }
    expect(server.hits('/x.json')).toBe(0);
  });

  it('fails cleanly when the name does not resolve', async () => {
    const { fetch } = fetcher();
    expect((await failure(fetch('https://nowhere.invalid/x.json'))).code).toBe('DNS_FAILED');
  });

  it('refuses redirects without following them', async () => {
    server.json('/target.json', { a: 1 });
    server.route('/redirect.json', (_req, res) => {
      res.writeHead(302, { location: server.url('/target.json') }).end();
    });
    const { fetch } = fetcher();
    expect((await failure(fetch(server.url('/redirect.json'), { redirect: 'manual' }))).code).toBe('REDIRECT_REFUSED');
    expect(server.hits('/target.json')).toBe(0);
  });

  it('refuses a body over the cap, declared or streamed', async () => {
    const big = JSON.stringify({ padding: 'x'.repeat(100 * 1024) });
    server.json('/big-declared.json', big);
    server.route('/big-chunked.json', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      for (let i = 0; i < 100; i += 1) res.write(`${'x'.repeat(1024)}`);
      res.end();
    });
    const { fetch } = fetcher();
    const declared = await failure(fetch(server.url('/big-declared.json')));
    expect(declared.code).toBe('TOO_LARGE');
    const chunked = await failure(fetch(server.url('/big-chunked.json')));
    expect(chunked.code).toBe('TOO_LARGE');
    server.json('/small.json', { padding: 'x'.repeat(500) });
    expect((await failure(fetcher({ maxBytes: 100 }).fetch(server.url('/small.json')))).code).toBe('TOO_LARGE');
  });

  it('accepts only JSON content types', async () => {
    server.route('/page.html', (_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('{"a":1}'));
    server.route('/untyped', (_req, res) => res.writeHead(200).end('{"a":1}'));
    server.json('/keys.json', { keys: [] }, { 'content-type': 'application/jwk-set+json' });
    const { fetch } = fetcher();
    expect((await failure(fetch(server.url('/page.html')))).code).toBe('CONTENT_TYPE_REFUSED');
    expect((await failure(fetch(server.url('/untyped')))).code).toBe('CONTENT_TYPE_REFUSED');
    expect((await fetch(server.url('/keys.json'))).status).toBe(200);
  });

  it('refuses error statuses', async () => {
    const { fetch } = fetcher();
    expect((await failure(fetch(server.url('/missing.json')))).code).toBe('STATUS_REFUSED');
  });

  it('times out a server that never answers, and one that trickles its body', async () => {
    server.route('/silent.json', () => {});
    server.route('/trickle.json', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"a":');
      const timer = setInterval(() => res.write(' '), 50);
      res.on('close', () => clearInterval(timer));
    });
    const { fetch } = fetcher({ timeoutMs: 300 });
    for (const path of ['/silent.json', '/trickle.json']) {
      const started = Date.now();
      const error = await failure(fetch(server.url(path)));
      expect(error.code, path).toBe('TIMEOUT');
      expect(Date.now() - started).toBeLessThan(1500);
    }
  });

  it('gives up when the caller aborts', async () => {
    server.route('/hang.json', () => {});
    const { fetch } = fetcher({ timeoutMs: 5000 });
    const error = await failure(fetch(server.url('/hang.json'), { signal: AbortSignal.timeout(100) }));
    expect(error.code).toBe('ABORTED');
  });

  it('refuses a certificate from an untrusted CA, or one not issued for the name', async () => {
    untrusted.json('/doc.json', { a: 1 });
    const { fetch } = fetcher();
    expect((await failure(fetch(untrusted.url('/doc.json')))).code).toBe('TLS_FAILED');
    // Without the extra CA, only the default trust store applies: the test CA is unknown there.
    const { fetch: defaultTrust } = fetcher({ ca: undefined });
    server.json('/doc.json', { a: 1 });
    expect((await failure(defaultTrust(server.url('/doc.json')))).code).toBe('TLS_FAILED');
    // Pinned to 127.0.0.1, yet the certificate is still checked against the name asked for.
    expect((await failure(fetch(server.url('/doc.json', 'wrong-name.test')))).code).toBe('TLS_FAILED');
  });

  it('refuses other schemes, credentials in the URL and methods other than GET', async () => {
    const { fetch } = fetcher();
    expect((await failure(fetch(`http://127.0.0.1:${server.port}/ok.json`))).code).toBe('URL_REFUSED');
    expect((await failure(fetch(`https://user:pw@cimd.test:${server.port}/ok.json`))).code).toBe('URL_REFUSED');
    expect((await failure(fetch(server.url('/ok.json'), { method: 'POST', body: 'x' }))).code).toBe('METHOD_REFUSED');
  });
});

describe('guarded fetch with a document cache', () => {
  const lifetime = { min: 60, max: 3600 };

  function cachingFetcher(cache: DocumentCache, namespace = 'tenant-a') {
    return fetcher({ cache: { cache, namespace, lifetime, shouldCache: isMetadataDocumentFor } });
  }

  it('serves a cached document without the network, and keeps nothing but documents', async () => {
    const url = server.url('/cached/client.json');
    server.json('/cached/client.json', document(url), { 'cache-control': 'max-age=120' });
    server.json('/cached/jwks.json', { keys: [] }, { 'cache-control': 'max-age=120' });
    const cache = createMemoryDocumentCache();
    const { fetch } = cachingFetcher(cache);
    const first = await fetch(url);
    expect(first.headers.get('cache-control')).toBe('max-age=120');
    expect(await first.json()).toMatchObject({ client_id: url });
    const second = await fetch(url);
    expect(await second.json()).toMatchObject({ client_id: url });
    expect(server.hits('/cached/client.json')).toBe(1);

    await fetch(server.url('/cached/jwks.json'));
    await fetch(server.url('/cached/jwks.json'));
    expect(server.hits('/cached/jwks.json')).toBe(2);

    // Another tenant (or policy) has its own entries.
    await cachingFetcher(cache, 'tenant-b').fetch(url);
    expect(server.hits('/cached/client.json')).toBe(2);
  });

  it('does not keep a document that may not be kept when the tenant allows that', async () => {
    const url = server.url('/cached/no-store.json');
    server.json('/cached/no-store.json', document(url), { 'cache-control': 'no-store' });
    const { fetch } = fetcher({
      cache: { cache: createMemoryDocumentCache(), namespace: 't', lifetime: { min: 0, max: 60 }, shouldCache: isMetadataDocumentFor },
    });
    await fetch(url);
    await fetch(url);
    expect(server.hits('/cached/no-store.json')).toBe(2);
  });

  it('shares documents through Redis between fetchers that share nothing else', async () => {
    const { redisUrl } = testServers();
    const prefix = uniqueRedisPrefix('cimd-cache');
    const redisA = new Redis(redisUrl);
    const redisB = new Redis(redisUrl);
    try {
      const url = server.url('/shared/client.json');
      server.json('/shared/client.json', document(url), { 'cache-control': 'max-age=600' });
      const first = cachingFetcher(createRedisDocumentCache(redisA, { prefix }));
      await first.fetch(url);
      const second = cachingFetcher(createRedisDocumentCache(redisB, { prefix }));
      const response = await second.fetch(url);
      expect(await response.json()).toMatchObject({ client_id: url });
      expect(server.hits('/shared/client.json')).toBe(1);
      const keys = await redisA.keys(`${prefix}:cimd:tenant-a:*`);
      expect(keys).toHaveLength(1);
      const ttl = await redisA.pttl(keys[0] as string);
      expect(ttl).toBeGreaterThan(590_000);
      expect(ttl).toBeLessThanOrEqual(600_000);
      // The second fetcher's lookup never ran: no DNS, no connection.
      expect(second.lookupCalls).toEqual([]);
    } finally {
      await deleteRedisKeys(redisA, prefix);
      redisA.disconnect();
      redisB.disconnect();
    }
  });

  it('falls back to the network when the cache fails', async () => {
    const url = server.url('/broken-cache/client.json');
    server.json('/broken-cache/client.json', document(url));
    const errors: unknown[] = [];
    const broken: DocumentCache = {
      get: () => Promise.reject(new Error('cache down')),
      set: () => new Promise(() => {}),
    };
    const { fetch } = fetcher({
      cache: { cache: broken, namespace: 't', lifetime, shouldCache: isMetadataDocumentFor },
      onCacheError: (e) => errors.push(e),
    });
    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(errors).toHaveLength(2);
  });
});
