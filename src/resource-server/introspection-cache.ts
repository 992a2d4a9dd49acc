import { createHash } from 'node:crypto';

/**
 * A bounded LRU of introspection results keyed by the token's SHA-256 (tokens themselves are
 * not kept as keys). Each entry carries its own deadline, set by the caller so that it never
 * outlives the token; an expired entry is dropped when read. Per process: across nodes each
 * keeps its own, which is fine for a cache whose whole point is to be short.
 */
export class IntrospectionCache<V> {
  readonly #entries = new Map<string, { value: V; expiresAtMs: number }>();
  readonly #maxEntries: number;

  constructor(maxEntries: number) {
    this.#maxEntries = maxEntries;
  }

  static keyOf(token: string): string {
    return createHash('sha256').update(token).digest('base64url');
  }

  get(key: string, nowMs: number): V | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    this.#entries.delete(key);
    if (entry.expiresAtMs <= nowMs) return undefined;
    this.#entries.set(key, entry); // most recently used goes last
    return entry.value;
  }

  set(key: string, value: V, expiresAtMs: number, nowMs: number): void {
    if (this.#maxEntries === 0 || expiresAtMs <= nowMs) return;
    this.#entries.delete(key);
    while (this.#entries.size >= this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done) break;
      this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, { value, expiresAtMs });
  }

  get size(): number {
    return this.#entries.size;
  }
}
