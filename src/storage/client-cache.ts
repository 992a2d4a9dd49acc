import { copyPayload } from './memory/copy-payload.ts';
import type { ModelName, ModelStore, Payload } from './model-store.ts';

/**
 * Per-node cache of Client records (ARCHITECTURE.md "Beyond one machine", STORES.md: every
 * token request finds its Client, and on FerretDB a find by _id scans the collection).
 *
 * - What: `Client` finds of the durable store, hits and misses (an unknown client_id is
 *   cached as absent, so guessing ids costs no MongoDB scans). Copies are cloned in and out:
 *   a caller cannot change the cached record.
 * - Bounds: at most `maxEntries` records (least recently used go first) and `maxAgeMs`
 *   (default 60 s) per record, a safety net for a lost invalidation.
 * - Invalidation: every Client upsert or destroy made through a wrapped store drops the
 *   entry on this node at once, and is announced to the other nodes (ClientChangeBus:
 *   Redis pub/sub) when there is one. A find that was in flight while any invalidation
 *   arrived is answered but not cached, so a stale read can never be cached after the
 *   change that made it stale.
 * - While the bus is not listening (its connection is down), nothing is cached and every
 *   find goes to the store: a node that may miss announcements must not serve from memory.
 *   When it listens again the whole cache is dropped (announcements may have been lost).
 * - Without a bus (MongoDB without Redis) only this node's changes invalidate: one node only.
 */

export interface ClientChangeBus {
  /** Tells every node (this one included) that a client changed. */
  publish(namespace: string, clientId: string): Promise<void>;
  /** True while this node receives every announcement. */
  listening(): boolean;
  close(): Promise<void>;
}

export interface ClientCacheOptions {
  maxEntries?: number;
  maxAgeMs?: number;
  now?: () => number;
  /** Where a failed announcement is reported; the change itself stands (max age bounds it). */
  onPublishError?: (error: unknown) => void;
}

interface Entry {
  /** undefined: the client does not exist. */
  payload: Payload | undefined;
  storedAt: number;
}

const SEPARATOR = '\u0000';

export class ClientCache {
  readonly #entries = new Map<string, Entry>();
  readonly #maxEntries: number;
  readonly #maxAgeMs: number;
  readonly #now: () => number;
  readonly #onPublishError: (error: unknown) => void;
  readonly #wrapped = new Map<string, { inner: ModelStore; outer: ModelStore }>();
  #bus: ClientChangeBus | undefined;
  /** Bumped by every invalidation: a find that saw it change does not cache its answer. */
  #generation = 0;

  constructor(options: ClientCacheOptions = {}) {
    this.#maxEntries = options.maxEntries ?? 10_000;
    this.#maxAgeMs = options.maxAgeMs ?? 60_000;
    this.#now = options.now ?? Date.now;
    this.#onPublishError = options.onPublishError ?? ((error) => process.emitWarning(`client change announcement failed: ${String(error)}`));
  }

  /** Connects the cross-node bus; until then (or without one) only local changes invalidate. */
  attachBus(bus: ClientChangeBus): void {
    this.#bus = bus;
  }

  /** Drops one client (an announcement from any node, or a local change). */
  invalidate(namespace: string, clientId: string): void {
    this.#generation += 1;
    this.#entries.delete(namespace + SEPARATOR + clientId);
  }

  /** Drops everything (the bus reconnected: announcements may have been missed). */
  clear(): void {
    this.#generation += 1;
    this.#entries.clear();
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The store of one namespace with its Client finds cached; one wrapper per namespace and store. */
  wrap(namespace: string, inner: ModelStore): ModelStore {
    const known = this.#wrapped.get(namespace);
    if (known?.inner === inner) return known.outer;
    const outer = new ClientCachingStore(this, namespace, inner);
    this.#wrapped.set(namespace, { inner, outer });
    return outer;
  }

  #caching(): boolean {
    return this.#bus === undefined || this.#bus.listening();
  }

  async find(namespace: string, clientId: string, load: () => Promise<Payload | undefined>): Promise<Payload | undefined> {
    const key = namespace + SEPARATOR + clientId;
    const caching = this.#caching();
    if (caching) {
      const entry = this.#entries.get(key);
      if (entry !== undefined) {
        if (this.#now() - entry.storedAt < this.#maxAgeMs) {
          // Least recently used goes first: a hit moves to the end of the Map's order.
          this.#entries.delete(key);
          this.#entries.set(key, entry);
          return entry.payload === undefined ? undefined : copyPayload(entry.payload);
        }
        this.#entries.delete(key);
      }
    }
    const generation = this.#generation;
    const payload = await load();
    if (caching && generation === this.#generation && this.#caching()) {
      this.#entries.set(key, { payload: payload === undefined ? undefined : copyPayload(payload), storedAt: this.#now() });
      while (this.#entries.size > this.#maxEntries) {
        const oldest = this.#entries.keys().next();
        if (oldest.done === true) break;
        this.#entries.delete(oldest.value);
      }
    }
    return payload;
  }

  /** After a change is stored: forget it here at once, then tell the other nodes. */
  async changed(namespace: string, clientId: string): Promise<void> {
    this.invalidate(namespace, clientId);
    if (this.#bus === undefined) return;
    try {
      await this.#bus.publish(namespace, clientId);
    } catch (error) {
      this.#onPublishError(error);
    }
  }
}

class ClientCachingStore implements ModelStore {
  readonly #cache: ClientCache;
  readonly #ns: string;
  readonly #inner: ModelStore;

  constructor(cache: ClientCache, namespace: string, inner: ModelStore) {
    this.#cache = cache;
    this.#ns = namespace;
    this.#inner = inner;
  }

  async upsert(model: ModelName, id: string, payload: Payload, expiresIn?: number): Promise<void> {
    try {
      await this.#inner.upsert(model, id, payload, expiresIn);
    } finally {
      // Also after a failure: the write may have landed.
      if (model === 'Client') await this.#cache.changed(this.#ns, id);
    }
  }

  find(model: ModelName, id: string): Promise<Payload | undefined> {
    if (model !== 'Client') return this.#inner.find(model, id);
    return this.#cache.find(this.#ns, id, () => this.#inner.find(model, id));
  }

  findByUid(model: ModelName, uid: string): Promise<Payload | undefined> {
    return this.#inner.findByUid(model, uid);
  }

  findByUserCode(model: ModelName, userCode: string): Promise<Payload | undefined> {
    return this.#inner.findByUserCode(model, userCode);
  }

  consume(model: ModelName, id: string): Promise<boolean> {
    return this.#inner.consume(model, id);
  }

  async destroy(model: ModelName, id: string): Promise<void> {
    try {
      await this.#inner.destroy(model, id);
    } finally {
      if (model === 'Client') await this.#cache.changed(this.#ns, id);
    }
  }

  revokeByGrantId(grantId: string): Promise<void> {
    return this.#inner.revokeByGrantId(grantId);
  }

  revokeByClientId(clientId: string, models?: readonly ModelName[]): Promise<void> {
    return this.#inner.revokeByClientId(clientId, models);
  }
}
