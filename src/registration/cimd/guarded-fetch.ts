import { lookup as dnsLookup } from 'node:dns/promises';
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { getCACertificates } from 'node:tls';
import { cacheLifetimeSeconds, type CacheLifetimeBounds, type DocumentCache } from './document-cache.ts';

/**
 * The fetch Castellan hands to oidc-provider (its `fetch` configuration option) for every
 * outgoing request it makes on a client's behalf: Client ID Metadata Documents, jwks_uri,
 * sector_identifier_uri. Every URL there is chosen by whoever wrote the client's metadata,
 * so the request is made as if by an attacker (CIMD draft §"Server Side Request Forgery"):
 *
 * - https only, GET only, no credentials in the URL;
 * - DNS resolved once, every address checked, the connection pinned to the checked address
 *   (a second lookup at connect time is how DNS rebinding slips past a check), while TLS
 *   still verifies the certificate against the host name;
 * - no redirects (a 3xx is a failure: the next hop would be unchecked);
 * - one deadline for DNS, connect, TLS, headers and body; a byte cap while streaming;
 * - a JSON content type or nothing.
 *
 * oidc-provider's own defence (an undici dispatcher that drops sockets to special-use
 * addresses after connecting) is not used: our check runs before connecting, and a tenant
 * may allow a private network, which that dispatcher could not express.
 */
export type FetchFunction = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** Resolves a host name to every address it has (all families), in the resolver's order. */
export type ResolveHost = (hostname: string) => Promise<readonly string[]>;

export type GuardedFetchErrorCode =
  | 'URL_REFUSED'
  | 'METHOD_REFUSED'
  | 'DNS_FAILED'
  | 'ADDRESS_REFUSED'
  | 'TLS_FAILED'
  | 'CONNECTION_FAILED'
  | 'TIMEOUT'
  | 'ABORTED'
  | 'REDIRECT_REFUSED'
  | 'STATUS_REFUSED'
  | 'CONTENT_TYPE_REFUSED'
  | 'TOO_LARGE';

/** Why a guarded fetch failed; oidc-provider turns any of these into invalid_client. */
export class GuardedFetchError extends Error {
  readonly code: GuardedFetchErrorCode;
  readonly url: string;
  constructor(code: GuardedFetchErrorCode, url: string, message: string, options?: { cause?: unknown }) {
    super(`${message} (${url})`, options);
    this.name = 'GuardedFetchError';
    this.code = code;
    this.url = url;
  }
}

export interface ResponseCacheBinding {
  cache: DocumentCache;
  /** The tenant, and whatever else decides what may be fetched, so no two policies share entries. */
  namespace: string;
  lifetime: CacheLifetimeBounds;
  /** Which bodies to keep: documents only, never a JWKS (a rotated key must be seen at once). */
  shouldCache(url: string, body: string): boolean;
}

export interface GuardedFetchOptions {
  /** May the server connect to `address`, which `host` resolved to? (See address-policy.ts.) */
  allowAddress(host: string, address: string): boolean;
  /** Defaults to the system resolver (dns.lookup with all: true). Injected by tests. */
  lookup?: ResolveHost;
  /**
   * Extra trusted CA certificates (PEM), added to Node's default trust store: a private PKI,
   * or a test CA. Certificates are always verified; there is deliberately no way to turn
   * that off.
   */
  ca?: string | Buffer | ReadonlyArray<string | Buffer>;
  /** One deadline for the whole request, DNS to last byte. Default 2500 ms, as oidc-provider's. */
  timeoutMs?: number;
  /** Largest body accepted. Default 64 KiB. */
  maxBytes?: number;
  cache?: ResponseCacheBinding;
  /** Called when the cache fails; the fetch then goes to the network as if it had missed. */
  onCacheError?(error: unknown): void;
}

export const DEFAULT_TIMEOUT_MS = 2500;
export const DEFAULT_MAX_BYTES = 64 * 1024;
/** A slow or unreachable cache may cost a fetch this much, no more. */
const CACHE_BUDGET_MS = 250;

async function systemLookup(hostname: string): Promise<readonly string[]> {
  const results = await dnsLookup(hostname, { all: true, verbatim: true });
  return results.map((r) => r.address);
}

/** application/json or any application/*+json (RFC 6839), parameters ignored. */
export function isJsonContentType(value: string | null | undefined): boolean {
  if (!value) return false;
  const essence = value.split(';', 1)[0]?.trim().toLowerCase() ?? '';
  return essence === 'application/json' || /^application\/[a-z0-9!#$&^_.-]+\+json$/u.test(essence);
}

const TLS_ERROR = /CERT|SIGNATURE|ISSUER|^ERR_TLS|^ERR_SSL/u;

interface Outgoing {
  /** The URL as given: the cache key, and what a document's client_id is compared with. */
  raw: string;
  url: URL;
  host: string;
  headers: OutgoingHttpHeaders;
  signal: AbortSignal | undefined;
}

function outgoing(input: string | URL | Request, init: RequestInit | undefined): Outgoing {
  const href = input instanceof Request ? input.url : String(input);
  const url = URL.parse(href);
  if (!url || url.protocol !== 'https:') throw new GuardedFetchError('URL_REFUSED', href, 'only https URLs are fetched');
  if (url.username || url.password) throw new GuardedFetchError('URL_REFUSED', href, 'URLs with credentials are not fetched');
  const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
  if (method !== 'GET' || init?.body != null) throw new GuardedFetchError('METHOD_REFUSED', href, `only GET is fetched, not ${method}`);
  const headers: OutgoingHttpHeaders = {};
  const given = new Headers(input instanceof Request ? input.headers : undefined);
  new Headers(init?.headers).forEach((value, name) => given.set(name, value));
  // oidc-provider blanks user-agent to send none; never forward hop-by-hop or body headers.
  given.forEach((value, name) => {
    if (value !== '' && !['host', 'connection', 'content-length', 'transfer-encoding', 'accept-encoding'].includes(name)) {
      headers[name] = value;
    }
  });
  headers['accept-encoding'] = 'identity';
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return { raw: href, url, host, headers, signal: init?.signal ?? (input instanceof Request ? input.signal : undefined) };
}

function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

function withinBudget<T>(promise: Promise<T>, ms: number): Promise<T> {
  return untilAborted(promise, AbortSignal.timeout(ms));
}

/**
 * DNS once; refuse when ANY address is refused (a name that resolves to one public and one
 * private address is either misconfigured or an attack), then pin the first.
 */
async function pinnedAddress(target: Outgoing, options: GuardedFetchOptions, signal: AbortSignal): Promise<string> {
  const href = target.raw;
  let addresses: readonly string[];
  if (isIP(target.host)) {
    addresses = [target.host];
  } else {
    try {
      addresses = await untilAborted((options.lookup ?? systemLookup)(target.host), signal);
    } catch (error) {
      if (error instanceof GuardedFetchError) throw error;
      throw new GuardedFetchError('DNS_FAILED', href, `cannot resolve ${target.host}`, { cause: error });
    }
  }
  if (addresses.length === 0) throw new GuardedFetchError('DNS_FAILED', href, `${target.host} has no addresses`);
  const refused = addresses.find((address) => !options.allowAddress(target.host, address));
  if (refused !== undefined) {
    throw new GuardedFetchError('ADDRESS_REFUSED', href, `${target.host} resolves to ${refused}, which may not be fetched`);
  }
  return addresses[0] as string;
}

interface Received {
  status: number;
  headers: Headers;
  body: Buffer;
}

function responseHeaders(message: IncomingMessage): Headers {
  const headers = new Headers();
  const raw = message.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i] as string, raw[i + 1] as string);
  return headers;
}

function exchange(
  target: Outgoing,
  address: string,
  ca: string[] | undefined,
  maxBytes: number,
  signal: AbortSignal,
): Promise<Received> {
  const href = target.raw;
  const family = isIP(address);
  // Every connection attempt gets the address we checked, never a fresh DNS answer.
  const pinned: LookupFunction = (_hostname, lookupOptions, callback) => {
    if (lookupOptions.all) callback(null, [{ address, family }]);
    else callback(null, address, family);
  };
  return new Promise<Received>((resolve, reject) => {
    let settled = false;
    const request = httpsRequest({
      host: target.host,
      port: target.url.port === '' ? 443 : Number(target.url.port),
      path: `${target.url.pathname}${target.url.search}`,
      method: 'GET',
      headers: target.headers,
      lookup: pinned,
      // The certificate is checked against the name, not the pinned address.
      ...(isIP(target.host) ? {} : { servername: target.host }),
      ...(ca ? { ca } : {}),
      rejectUnauthorized: true,
      agent: false,
    });
    const fail = (error: GuardedFetchError) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      request.destroy();
      reject(error);
    };
    const onAbort = () => {
      const reason: unknown = signal.reason;
      fail(reason instanceof GuardedFetchError ? reason : new GuardedFetchError('ABORTED', href, 'request aborted', { cause: reason }));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();

    request.on('error', (error: NodeJS.ErrnoException) => {
      const tls = typeof error.code === 'string' && TLS_ERROR.test(error.code);
      fail(new GuardedFetchError(tls ? 'TLS_FAILED' : 'CONNECTION_FAILED', href, error.message, { cause: error }));
    });
    request.on('response', (response) => {
      const status = response.statusCode ?? 0;
      if (status >= 300 && status < 400) {
        return fail(new GuardedFetchError('REDIRECT_REFUSED', href, `redirects are not followed (status ${status})`));
      }
      if (status < 200 || status > 299) return fail(new GuardedFetchError('STATUS_REFUSED', href, `unexpected status ${status}`));
      if (!isJsonContentType(response.headers['content-type'])) {
        return fail(new GuardedFetchError('CONTENT_TYPE_REFUSED', href, `content type ${JSON.stringify(response.headers['content-type'] ?? '')} is not JSON`));
      }
      const declared = Number(response.headers['content-length']);
      if (Number.isFinite(declared) && declared > maxBytes) {
        return fail(new GuardedFetchError('TOO_LARGE', href, `body of ${declared} bytes exceeds ${maxBytes}`));
      }
      const chunks: Buffer[] = [];
      let received = 0;
      response.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > maxBytes) return fail(new GuardedFetchError('TOO_LARGE', href, `body exceeds ${maxBytes} bytes`));
        chunks.push(chunk);
      });
      response.on('error', (error) => fail(new GuardedFetchError('CONNECTION_FAILED', href, error.message, { cause: error })));
      response.on('close', () => {
        if (!response.complete) fail(new GuardedFetchError('CONNECTION_FAILED', href, 'connection closed before the body ended'));
      });
      response.on('end', () => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        resolve({ status, headers: responseHeaders(response), body: Buffer.concat(chunks) });
      });
    });
    request.end();
  });
}

/** A Response from the cache: its remaining lifetime as max-age, so no cache downstream outlives ours. */
function cachedResponse(body: string, contentType: string, expiresAt: number): Response {
  const remaining = Math.max(0, Math.ceil((expiresAt - Date.now()) / 1000));
  return new Response(body, {
    status: 200,
    headers: { 'content-type': contentType, 'cache-control': `max-age=${remaining}` },
  });
}

function toResponse(received: Received): Response {
  const nullBody = received.status === 204 || received.status === 205;
  return new Response(nullBody ? null : new Uint8Array(received.body), { status: received.status, headers: received.headers });
}

/** See the module comment. The returned function never follows a redirect and never hangs past its deadline. */
export function createGuardedFetch(options: GuardedFetchOptions): FetchFunction {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const extraCa = options.ca === undefined ? [] : [options.ca].flat().map((pem) => pem.toString());
  const ca = extraCa.length > 0 ? [...getCACertificates('default'), ...extraCa] : undefined;
  const binding = options.cache;
  const cacheError = (error: unknown) => options.onCacheError?.(error);

  return async function guardedFetch(input, init) {
    const target = outgoing(input, init);
    const href = target.raw;

    if (binding) {
      const hit = await withinBudget(binding.cache.get(binding.namespace, href), CACHE_BUDGET_MS).catch((error: unknown) => {
        cacheError(error);
        return undefined;
      });
      if (hit) return cachedResponse(hit.body, hit.contentType, hit.expiresAt);
    }

    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new GuardedFetchError('TIMEOUT', href, `no complete response within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const outer = target.signal;
    const onOuterAbort = () => controller.abort(new GuardedFetchError('ABORTED', href, 'request aborted', { cause: outer?.reason }));
    if (outer?.aborted) onOuterAbort();
    outer?.addEventListener('abort', onOuterAbort, { once: true });
    let received: Received;
    try {
      const address = await pinnedAddress(target, options, controller.signal);
      received = await exchange(target, address, ca, maxBytes, controller.signal);
    } finally {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onOuterAbort);
    }

    if (binding && received.status === 200) {
      const body = received.body.toString('utf8');
      if (binding.shouldCache(href, body)) {
        const now = Date.now();
        const seconds = cacheLifetimeSeconds(received.headers, binding.lifetime, now);
        if (seconds > 0) {
          const document = {
            body,
            contentType: received.headers.get('content-type') ?? 'application/json',
            expiresAt: now + seconds * 1000,
          };
          await withinBudget(binding.cache.set(binding.namespace, href, document), CACHE_BUDGET_MS).catch(cacheError);
          return cachedResponse(document.body, document.contentType, document.expiresAt);
        }
      }
    }
    return toResponse(received);
  };
}
