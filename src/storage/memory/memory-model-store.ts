import { DEFAULT_LIST_LIMIT, matchesRecordQuery, type ListedRecord, type ModelName, type ModelStore, type Payload, type RecordLister, type RecordQuery } from '../model-store.ts';
import { copyPayload } from './copy-payload.ts';
import { assertNamespace, epochSeconds, expiresAtFrom, indexedFields, isLive } from '../shared/records.ts';

/**
 * The in-process backend: tests and the embedded default of `npm start`. State lives in
 * Maps, one set per namespace; nothing survives a restart and nothing is shared between
 * nodes. Every method body runs without an await between its read and its write, so on
 * Node's single thread each one is atomic (consume included).
 */

interface Entry {
  model: ModelName;
  id: string;
  /** A private copy: callers never hold a reference to stored state. */
  payload: Payload;
  expiresAt: number | undefined;
  /** Epoch seconds; kept across upserts so a stale save cannot re-arm a single-use record. */
  consumed: number | undefined;
}

/** `<Model>:<value>`: model names contain no ':', so the key is unambiguous. */
function keyOf(model: ModelName, value: string): string {
  return `${model}:${value}`;
}

class Namespace {
  readonly records = new Map<string, Entry>();
  readonly byUid = new Map<string, string>();
  readonly byUserCode = new Map<string, string>();
  /** grantId → record keys of every model carrying it. */
  readonly byGrant = new Map<string, Set<string>>();
  /** clientId → record keys of every model carrying it. */
  readonly byClient = new Map<string, Set<string>>();

  live(key: string, now: number): Entry | undefined {
    const entry = this.records.get(key);
    if (entry === undefined) return undefined;
    if (isLive(entry.expiresAt, now)) return entry;
    this.remove(key);
    return undefined;
  }

  add(key: string, entry: Entry): void {
    this.records.set(key, entry);
    const { model, id } = entry;
    const { grantId, uid, userCode, clientId } = indexedFields(entry.payload);
    if (uid !== undefined) this.byUid.set(keyOf(model, uid), id);
    if (userCode !== undefined) this.byUserCode.set(keyOf(model, userCode), id);
    if (grantId !== undefined) addMember(this.byGrant, grantId, key);
    if (clientId !== undefined) addMember(this.byClient, clientId, key);
  }

  remove(key: string): void {
    const entry = this.records.get(key);
    if (entry === undefined) return;
    this.records.delete(key);
    const { model, id } = entry;
    const { grantId, uid, userCode, clientId } = indexedFields(entry.payload);
    // An index entry is removed only while it still points at this record.
    if (uid !== undefined && this.byUid.get(keyOf(model, uid)) === id) this.byUid.delete(keyOf(model, uid));
    if (userCode !== undefined && this.byUserCode.get(keyOf(model, userCode)) === id) {
      this.byUserCode.delete(keyOf(model, userCode));
    }
    if (grantId !== undefined) removeMember(this.byGrant, grantId, key);
    if (clientId !== undefined) removeMember(this.byClient, clientId, key);
  }

  sweep(now: number): number {
    let removed = 0;
    for (const [key, entry] of this.records) {
      if (!isLive(entry.expiresAt, now)) {
        this.remove(key);
        removed += 1;
      }
    }
    return removed;
  }

  /** Where the incremental sweep goes on (a live Map iterator: deleting while iterating is safe). */
  #cursor: Iterator<[string, Entry]> | undefined;

  /**
   * Looks at the next `count` records in insertion order and removes the expired ones,
   * starting over at the end. Called on every write, it keeps expired records bounded
   * without ever walking the whole Map at once: a full sweep of 1M records in one go held
   * the event loop for tens of milliseconds (bench growth: issuance p99 at 1M records).
   */
  sweepSome(now: number, count: number): void {
    for (let i = 0; i < count; i += 1) {
      this.#cursor ??= this.records.entries();
      const next = this.#cursor.next();
      if (next.done === true) {
        // Round done: the next step starts over from the oldest record.
        this.#cursor = undefined;
        continue;
      }
      const [key, entry] = next.value;
      if (!isLive(entry.expiresAt, now)) this.remove(key);
    }
  }
}

function addMember(index: Map<string, Set<string>>, value: string, key: string): void {
  const members = index.get(value) ?? new Set<string>();
  members.add(key);
  index.set(value, members);
}

function removeMember(index: Map<string, Set<string>>, value: string, key: string): void {
  const members = index.get(value);
  members?.delete(key);
  if (members?.size === 0) index.delete(value);
}

function view(entry: Entry): Payload {
  const payload = copyPayload(entry.payload);
  if (entry.consumed !== undefined) payload.consumed = entry.consumed;
  return payload;
}

class MemoryModelStore implements ModelStore, RecordLister {
  readonly #ns: Namespace;
  readonly #sweepPerWrite: number;

  constructor(ns: Namespace, sweepPerWrite: number) {
    this.#ns = ns;
    this.#sweepPerWrite = sweepPerWrite;
  }

  async upsert(model: ModelName, id: string, payload: Payload, expiresIn?: number): Promise<void> {
    const now = Date.now();
    const expiresAt = expiresAtFrom(expiresIn, now);
    const key = keyOf(model, id);
    const previous = this.#ns.live(key, now);
    this.#ns.remove(key);
    if (!isLive(expiresAt, now)) return;
    this.#ns.add(key, { model, id, payload: copyPayload(payload), expiresAt, consumed: previous?.consumed });
    this.#ns.sweepSome(now, this.#sweepPerWrite);
  }

  async find(model: ModelName, id: string): Promise<Payload | undefined> {
    const entry = this.#ns.live(keyOf(model, id), Date.now());
    return entry === undefined ? undefined : view(entry);
  }

  async findByUid(model: ModelName, uid: string): Promise<Payload | undefined> {
    return this.#findByIndex(model, this.#ns.byUid, uid, 'uid');
  }

  async findByUserCode(model: ModelName, userCode: string): Promise<Payload | undefined> {
    return this.#findByIndex(model, this.#ns.byUserCode, userCode, 'userCode');
  }

  async consume(model: ModelName, id: string): Promise<boolean> {
    const now = Date.now();
    const entry = this.#ns.live(keyOf(model, id), now);
    if (entry === undefined || entry.consumed !== undefined || entry.payload.consumed != null) return false;
    entry.consumed = epochSeconds(now);
    return true;
  }

  async destroy(model: ModelName, id: string): Promise<void> {
    this.#ns.remove(keyOf(model, id));
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    for (const key of [...(this.#ns.byGrant.get(grantId) ?? [])]) this.#ns.remove(key);
  }

  async revokeByClientId(clientId: string, models?: readonly ModelName[]): Promise<void> {
    for (const key of [...(this.#ns.byClient.get(clientId) ?? [])]) {
      const entry = this.#ns.records.get(key);
      if (entry !== undefined && (models === undefined || models.includes(entry.model))) this.#ns.remove(key);
    }
  }

  async list(model: ModelName, query: RecordQuery = {}): Promise<ListedRecord[]> {
    const now = Date.now();
    const found: ListedRecord[] = [];
    for (const key of [...this.#ns.records.keys()].sort()) {
      const entry = this.#ns.live(key, now);
      if (entry === undefined || entry.model !== model) continue;
      if (query.after !== undefined && entry.id <= query.after) continue;
      const payload = view(entry);
      if (matchesRecordQuery(model, payload, query)) found.push({ id: entry.id, payload });
      if (found.length >= (query.limit ?? DEFAULT_LIST_LIMIT)) break;
    }
    return found;
  }

  #findByIndex(
    model: ModelName,
    index: Map<string, string>,
    value: string,
    field: 'uid' | 'userCode',
  ): Payload | undefined {
    const id = index.get(keyOf(model, value));
    if (id === undefined) return undefined;
    const entry = this.#ns.live(keyOf(model, id), Date.now());
    return entry !== undefined && entry.payload[field] === value ? view(entry) : undefined;
  }
}

export interface MemoryModelStoresOptions {
  /**
   * Records of the written namespace looked at (and removed when expired) on every write:
   * lazy cleanup in small steps (reads check expiry anyway). Default 8: more than the one
   * record a write adds, so the sweep keeps going round.
   */
  sweepPerWrite?: number;
}

export interface MemoryModelStores {
  forNamespace(namespace: string): ModelStore & RecordLister;
  /** Removes every expired record now; returns how many. */
  sweepExpired(): number;
}

export function createMemoryModelStores(options: MemoryModelStoresOptions = {}): MemoryModelStores {
  const sweepPerWrite = options.sweepPerWrite ?? 8;
  const namespaces = new Map<string, { data: Namespace; store: MemoryModelStore }>();

  function sweepExpired(): number {
    const now = Date.now();
    let removed = 0;
    for (const { data } of namespaces.values()) removed += data.sweep(now);
    return removed;
  }

  return {
    forNamespace(namespace) {
      assertNamespace(namespace);
      let entry = namespaces.get(namespace);
      if (entry === undefined) {
        const data = new Namespace();
        entry = { data, store: new MemoryModelStore(data, sweepPerWrite) };
        namespaces.set(namespace, entry);
      }
      return entry.store;
    },
    sweepExpired,
  };
}
