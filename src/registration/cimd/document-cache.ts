import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';

/**
 * A shared cache of fetched Client ID Metadata Documents. oidc-provider keeps its own small
 * per-process LRU in front of it; this one lets every node (and a restarted one) reuse a
 * document for as long as its publisher said it may be kept (CIMD draft §"Metadata
 * Caching"), instead of each node fetching it again. Keyed by a namespace (the tenant and
 * the fetch policy it was fetched under) and the URL.
 */
export interface CachedDocument {
  /** The response body as received (UTF-8 JSON). */
  body: string;
  contentType: string;
  /** Epoch milliseconds; the entry is not served from then on. */
  expiresAt: number;
}

export interface DocumentCache {
  get(namespace: string, url: string): Promise<CachedDocument | undefined>;
  /** Keeps the document until its expiresAt; one already expired is not stored. */
  set(namespace: string, url: string, document: CachedDocument): Promise<void>;
}

export interface CacheLifetimeBounds {
  /** Seconds; a document is kept at least this long, whatever its headers say (0: may not be kept). */
  min: number;
  /** Seconds; and never longer than this. */
  max: number;
}

function directiveSeconds(cacheControl: string, name: string): number | undefined {
  const match = new RegExp(`(?:^|,)\\s*${name}\\s*=\\s*"?(\\d+)"?\\s*(?:,|$)`, 'iu').exec(cacheControl);
  return match?.[1] === undefined ? undefined : Number.parseInt(match[1], 10);
}

/**
 * How long a response may be kept, in whole seconds: s-maxage (we are a shared cache), else
 * max-age, else Expires relative to the response's Date (RFC 9111 §4.2.1); no-store and
 * no-cache count as 0. The result is clamped to the tenant's bounds, so a publisher can
 * neither make us refetch on every request nor pin a document for a year.
 */
export function cacheLifetimeSeconds(headers: Headers, bounds: CacheLifetimeBounds, nowMs: number = Date.now()): number {
  const min = Math.max(0, Math.min(bounds.min, bounds.max));
  const max = Math.max(0, bounds.max);
  let seconds: number | undefined;
  const cacheControl = headers.get('cache-control');
  if (cacheControl !== null) {
    if (/(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|$|=)/iu.test(cacheControl)) seconds = 0;
    else seconds = directiveSeconds(cacheControl, 's-maxage') ?? directiveSeconds(cacheControl, 'max-age');
  }
  if (seconds === undefined) {
    const expires = headers.get('expires');
    if (expires !== null) {
      const expiresAt = Date.parse(expires);
      const date = Date.parse(headers.get('date') ?? '');
      seconds = Number.isNaN(expiresAt) ? 0 : Math.floor((expiresAt - (Number.isNaN(date) ? nowMs : date)) / 1000);
    }
  }
  return Math.min(max, Math.max(min, seconds ?? min));
}

/** A process-local cache (tests, `npm start` on the memory store): a Map with expiry, bounded. */
export function createMemoryDocumentCache(options: { maxEntries?: number; now?: () => number } = {}): DocumentCache {
  const maxEntries = options.maxEntries ?? 1000;
  const now = options.now ?? Date.now;
  const entries = new Map<string, CachedDocument>();
  const key = (namespace: string, url: string) => `${namespace}\n${url}`;
  return {
    async get(namespace, url) {
      const k = key(namespace, url);
      const entry = entries.get(k);
      if (entry === undefined) return undefined;
      if (entry.expiresAt <= now()) {
        entries.delete(k);
        return undefined;
      }
      return { ...entry };
    },
    async set(namespace, url, document) {
      if (document.expiresAt <= now()) return;
      const k = key(namespace, url);
      entries.delete(k);
      entries.set(k, { ...document });
      // Oldest first out: Map iterates in insertion order.
      for (const oldest of entries.keys()) {
        if (entries.size <= maxEntries) break;
        entries.delete(oldest);
      }
    },
  };
}

function isCachedDocument(value: unknown): value is CachedDocument {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Record<string, unknown>;
  return typeof record.body === 'string' && typeof record.contentType === 'string' && typeof record.expiresAt === 'number';
}

/**
 * The Redis cache: one string per document at `<prefix>:cimd:<namespace>:<sha256(url)>`,
 * written with SET PX so Redis drops it when it expires; every read checks expiresAt as well
 * (ARCHITECTURE.md "Storage": an expiry check on every read regardless). One key per
 * operation, so it works unchanged on Redis Cluster.
 */
export function createRedisDocumentCache(
  redis: Redis | Cluster,
  options: { prefix?: string; now?: () => number } = {},
): DocumentCache {
  const prefix = options.prefix ?? 'castellan';
  const now = options.now ?? Date.now;
  const key = (namespace: string, url: string) =>
    `${prefix}:cimd:${namespace}:${createHash('sha256').update(url).digest('base64url')}`;
  return {
    async get(namespace, url) {
      const raw = await redis.get(key(namespace, url));
      if (raw === null) return undefined;
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw);
      } catch {
        return undefined;
      }
      if (!isCachedDocument(parsed) || parsed.expiresAt <= now()) return undefined;
      return { body: parsed.body, contentType: parsed.contentType, expiresAt: parsed.expiresAt };
    },
    async set(namespace, url, document) {
      const ttl = Math.floor(document.expiresAt - now());
      if (ttl <= 0) return;
      const value: CachedDocument = { body: document.body, contentType: document.contentType, expiresAt: document.expiresAt };
      await redis.set(key(namespace, url), JSON.stringify(value), 'PX', ttl);
    },
  };
}
