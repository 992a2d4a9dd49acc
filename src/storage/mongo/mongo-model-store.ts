import { MongoServerError, type Collection, type Db } from 'mongodb';
import { DEFAULT_LIST_LIMIT, MODEL_NAMES, matchesRecordQuery, type ListedRecord, type ModelName, type Payload, type RecordLister, type RecordQuery, type RecordStore, type StoredRecord } from '../model-store.ts';
import { isDuplicateKeyError } from './duplicate-key.ts';
import {
  assertNamespace,
  epochSeconds,
  expiresAtFrom,
  indexedFields,
  isLive,
  parsePayload,
  serializePayload,
} from '../shared/records.ts';

/**
 * The MongoDB backend, written for what both MongoDB and FerretDB v1 guarantee
 * (shared/design/STORES.md): one collection per model, every read by `_id` where the
 * contract allows it, and "exactly once" built on an insert with a unique `_id`, the only
 * primitive that is race-safe on FerretDB (its conditional updates are not atomic).
 */

interface RecordDoc {
  /** `<namespace>:<id>`; namespaces contain no ':' (assertNamespace). */
  _id: string;
  ns: string;
  /** JSON text (shared/records.ts says why not a subdocument). */
  payload: string;
  /** Absent for records that never expire. TTL index where the server has one. */
  expiresAt?: Date;
  // Top-level copies of payload fields, for findByUid / findByUserCode / revokeByGrantId /
  // revokeByClientId. Records written before clientId was copied lack it until re-saved.
  grantId?: string;
  uid?: string;
  userCode?: string;
  clientId?: string;
}

interface ConsumptionDoc {
  /** `<Model>:<namespace>:<id>`: the unique key whose insert decides the one winner. */
  _id: string;
  ns: string;
  /** Epoch seconds, reported by find() as `consumed`. */
  consumedAt: number;
  /** The record's expiry when it was consumed, so TTL and the sweeper drop both together. */
  expiresAt?: Date;
}

/**
 * oidc-provider 9 models whose payload carries a top-level grantId (lib/models/*.js):
 * lib/helpers/revoke.js revokes the first six by grant, and Interaction carries one too.
 */
const GRANT_MODELS: readonly ModelName[] = [
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
  'Interaction',
];

/**
 * Models that never get a consumption record, so their reads and deletes skip the
 * consumptions collection (on FerretDB every lookup there is a scan, even by `_id`).
 * oidc-provider 9 calls Adapter#consume only from its consumable models (AuthorizationCode,
 * RefreshToken, DeviceCode, BackchannelAuthenticationRequest, PreAuthorizedCode,
 * PushedAuthorizationRequest: lib/models/*.js); Castellan consumes ReplayDetection
 * (oidc-adapter.ts) and Interaction (upstream-attempts.ts). None of the models below is
 * among them, and consume() refuses them, so no consumption record of theirs can exist.
 */
export const NEVER_CONSUMED: ReadonlySet<ModelName> = new Set<ModelName>([
  'AccessToken',
  'ClientCredentials',
  'Client',
  'Grant',
  'Session',
  'InitialAccessToken',
  'RegistrationAccessToken',
]);

/** FerretDB v1 answers TTL (and partial) index options with NotImplemented. */
const NOT_IMPLEMENTED = 238;

function dateOrUndefined(value: unknown): number | undefined {
  return value instanceof Date ? value.getTime() : undefined;
}

export interface MongoModelStoresOptions {
  /** Collection name prefix: `<prefix><Model>` and `<prefix>consumptions`. Default `oidc_`. */
  collectionPrefix?: string;
  /** Period of startSweeper(). Default 60 s. */
  sweepIntervalMs?: number;
  /** Where the background sweeper reports a failed sweep. Default: a process warning. */
  onSweepError?: (error: unknown) => void;
}

export interface IndexReport {
  /** false where the server refused TTL indexes (FerretDB); reads and the sweeper cover expiry. */
  ttl: boolean;
}

export interface MongoModelStores {
  forNamespace(namespace: string): RecordStore & RecordLister;
  /** Creates the lookup and TTL indexes once per factory (call at startup); idempotent. */
  ensureIndexes(): Promise<IndexReport>;
  /** Deletes every expired record and consumption now; returns how many. */
  sweepExpired(): Promise<number>;
  /** Runs sweepExpired() periodically on an unref'd timer until close(). */
  startSweeper(): void;
  /** Stops the sweeper and waits for a sweep in flight. The caller owns the MongoClient. */
  close(): Promise<void>;
}

class Collections {
  readonly #db: Db;
  readonly #prefix: string;
  readonly #records = new Map<ModelName, Collection<RecordDoc>>();
  readonly consumptions: Collection<ConsumptionDoc>;
  /** Models seen carrying a grantId beyond GRANT_MODELS (this process only). */
  readonly extraGrantModels = new Set<ModelName>();

  constructor(db: Db, prefix: string) {
    this.#db = db;
    this.#prefix = prefix;
    this.consumptions = db.collection<ConsumptionDoc>(`${prefix}consumptions`);
  }

  records(model: ModelName): Collection<RecordDoc> {
    let collection = this.#records.get(model);
    if (collection === undefined) {
      collection = this.#db.collection<RecordDoc>(`${this.#prefix}${model}`);
      this.#records.set(model, collection);
    }
    return collection;
  }

  grantModels(): ModelName[] {
    return [...new Set([...GRANT_MODELS, ...this.extraGrantModels])];
  }
}

class MongoModelStore implements RecordStore, RecordLister {
  readonly #ns: string;
  readonly #c: Collections;

  constructor(namespace: string, collections: Collections) {
    this.#ns = namespace;
    this.#c = collections;
  }

  async upsert(model: ModelName, id: string, payload: Payload, expiresIn?: number): Promise<void> {
    const now = Date.now();
    const expiresAt = expiresAtFrom(expiresIn, now);
    if (!isLive(expiresAt, now)) {
      await this.destroy(model, id);
      return;
    }
    const fields = indexedFields(payload);
    if (fields.grantId !== undefined && !GRANT_MODELS.includes(model)) this.#c.extraGrantModels.add(model);
    const doc: Omit<RecordDoc, '_id'> = { ns: this.#ns, payload: serializePayload(payload), ...fields };
    if (expiresAt !== undefined) doc.expiresAt = new Date(expiresAt);
    const filter = { _id: this.#recordId(id) };
    // Most upserts create a record (every new token, code, grant): insert first. On FerretDB
    // an insert stays fast as the collection grows, while replaceOne (like findOne) by _id
    // scans the whole collection (measured by `npm run bench -- growth`); a duplicate key
    // means the record exists, and the replace below updates it.
    try {
      await this.#c.records(model).insertOne({ ...filter, ...doc });
      return;
    } catch (error) {
      if (!isDuplicateKeyError(error)) throw error;
    }
    // A consumption record is left alone: a consumed id stays consumed when re-saved.
    try {
      await this.#c.records(model).replaceOne(filter, doc, { upsert: true });
    } catch (error) {
      // Two upserts of a new _id can both try the insert; the loser's retry replaces.
      if (!isDuplicateKeyError(error)) throw error;
      await this.#c.records(model).replaceOne(filter, doc, { upsert: true });
    }
  }

  async find(model: ModelName, id: string): Promise<Payload | undefined> {
    const [doc, consumption] = await Promise.all([
      this.#c.records(model).findOne({ _id: this.#recordId(id) }),
      this.#consumptionOf(model, id),
    ]);
    return this.#view(model, doc, consumption);
  }

  /** find() with the record's own expiry (epoch ms), for read copies that must not outlive it. */
  async findRecord(model: ModelName, id: string): Promise<StoredRecord | undefined> {
    const [doc, consumption] = await Promise.all([
      this.#c.records(model).findOne({ _id: this.#recordId(id) }),
      this.#consumptionOf(model, id),
    ]);
    const payload = this.#view(model, doc, consumption);
    return payload === undefined ? undefined : { payload, expiresAt: dateOrUndefined(doc?.expiresAt) };
  }

  async findByUid(model: ModelName, uid: string): Promise<Payload | undefined> {
    return this.#findBy(model, { ns: this.#ns, uid });
  }

  async findByUserCode(model: ModelName, userCode: string): Promise<Payload | undefined> {
    return this.#findBy(model, { ns: this.#ns, userCode });
  }

  /**
   * The winner is whoever inserts the consumption record first; FerretDB's conditional
   * updates let several callers "win" a findOneAndUpdate (STORES.md), its unique `_id`
   * does not. A consumption already present, for whatever reason, means consumed.
   * A model in NEVER_CONSUMED is refused: its reads and deletes do not look for one.
   */
  async consume(model: ModelName, id: string): Promise<boolean> {
    if (NEVER_CONSUMED.has(model)) throw new Error(`${model} is never consumed (mongo-model-store.ts NEVER_CONSUMED)`);
    const now = Date.now();
    const doc = await this.#c.records(model).findOne(
      { _id: this.#recordId(id) },
      { projection: { payload: 1, expiresAt: 1 } },
    );
    if (doc === null || !isLive(dateOrUndefined(doc.expiresAt), now)) return false;
    if (parsePayload(doc.payload, this.#where(model, id)).consumed != null) return false;
    const consumption: ConsumptionDoc = {
      _id: this.#consumptionId(model, id),
      ns: this.#ns,
      consumedAt: epochSeconds(now),
    };
    if (doc.expiresAt instanceof Date) consumption.expiresAt = doc.expiresAt;
    try {
      await this.#c.consumptions.insertOne(consumption);
      return true;
    } catch (error) {
      if (isDuplicateKeyError(error)) return false;
      throw error;
    }
  }

  async destroy(model: ModelName, id: string): Promise<void> {
    // The record grants access, so it goes first (no transactions: STORES.md).
    await this.#c.records(model).deleteOne({ _id: this.#recordId(id) });
    if (!NEVER_CONSUMED.has(model)) await this.#c.consumptions.deleteOne({ _id: this.#consumptionId(model, id) });
  }

  /** Consumption records of revoked tokens stay until they expire: they grant nothing. */
  async revokeByGrantId(grantId: string): Promise<void> {
    await Promise.all(
      this.#c.grantModels().map((model) => this.#c.records(model).deleteMany({ ns: this.#ns, grantId })),
    );
  }

  /**
   * One deleteMany per model collection: FerretDB answers each with a scan (STORES.md),
   * acceptable for client deletion, which is rare; real MongoDB uses the (ns, clientId) index.
   */
  async revokeByClientId(clientId: string, models: readonly ModelName[] = MODEL_NAMES): Promise<void> {
    await Promise.all(models.map((model) => this.#c.records(model).deleteMany({ ns: this.#ns, clientId })));
  }

  /**
   * An operator's listing: by (ns, clientId) where asked (indexed on MongoDB), otherwise the
   * namespace's records of that model, filtered here; FerretDB scans either way (STORES.md).
   */
  async list(model: ModelName, query: RecordQuery = {}): Promise<ListedRecord[]> {
    const now = new Date();
    const limit = query.limit ?? DEFAULT_LIST_LIMIT;
    const filter = {
      ns: this.#ns,
      ...(query.after !== undefined && { _id: { $gt: this.#recordId(query.after) } }),
      ...(query.clientId !== undefined && model !== 'Client' && { clientId: query.clientId }),
      $or: [{ expiresAt: { $exists: false } }, { expiresAt: { $gt: now } }],
    };
    const found: ListedRecord[] = [];
    for await (const doc of this.#c.records(model).find(filter).sort({ _id: 1 })) {
      const payload = parsePayload(doc.payload, `${this.#c.records(model).collectionName}/${doc._id}`);
      if (!matchesRecordQuery(model, payload, query)) continue;
      found.push({ id: doc._id.slice(this.#ns.length + 1), payload });
      if (found.length >= limit) break;
    }
    return found;
  }

  /**
   * Lookups by uid and userCode are the only reads not by `_id`: FerretDB answers them
   * with a scan (STORES.md), so their models belong in Redis on a hot path.
   */
  async #findBy(model: ModelName, filter: { ns: string; uid?: string; userCode?: string }): Promise<Payload | undefined> {
    const now = new Date();
    const doc = await this.#c.records(model).findOne({
      ...filter,
      $or: [{ expiresAt: { $exists: false } }, { expiresAt: { $gt: now } }],
    });
    if (doc === null) return undefined;
    const id = doc._id.slice(this.#ns.length + 1);
    return this.#view(model, doc, await this.#consumptionOf(model, id));
  }

  /** The record's consumption, if its model can have one (NEVER_CONSUMED). */
  async #consumptionOf(model: ModelName, id: string): Promise<ConsumptionDoc | null> {
    if (NEVER_CONSUMED.has(model)) return null;
    return this.#c.consumptions.findOne({ _id: this.#consumptionId(model, id) });
  }

  #view(model: ModelName, doc: RecordDoc | null, consumption: ConsumptionDoc | null): Payload | undefined {
    if (doc === null || !isLive(dateOrUndefined(doc.expiresAt), Date.now())) return undefined;
    const payload = parsePayload(doc.payload, `${this.#c.records(model).collectionName}/${doc._id}`);
    // A consumption counts while it exists: it was written with the record's expiry.
    if (consumption !== null) payload.consumed = consumption.consumedAt;
    return payload;
  }

  #recordId(id: string): string {
    return `${this.#ns}:${id}`;
  }

  #consumptionId(model: ModelName, id: string): string {
    return `${model}:${this.#ns}:${id}`;
  }

  #where(model: ModelName, id: string): string {
    return `${this.#c.records(model).collectionName}/${this.#recordId(id)}`;
  }
}

function isNotImplemented(error: unknown): boolean {
  return error instanceof MongoServerError && error.code === NOT_IMPLEMENTED;
}

export function createMongoModelStores(db: Db, options: MongoModelStoresOptions = {}): MongoModelStores {
  const collections = new Collections(db, options.collectionPrefix ?? 'oidc_');
  const sweepIntervalMs = options.sweepIntervalMs ?? 60_000;
  const onSweepError =
    options.onSweepError ?? ((error: unknown) => process.emitWarning(`model store sweep failed: ${String(error)}`));
  const stores = new Map<string, MongoModelStore>();
  let indexes: Promise<IndexReport> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let sweeping: Promise<number> | undefined;

  const allCollections = (): Array<Collection<RecordDoc> | Collection<ConsumptionDoc>> => [
    ...MODEL_NAMES.map((model) => collections.records(model)),
    collections.consumptions,
  ];

  /** A refused TTL option is not an error: every read checks expiresAt (STORES.md). */
  async function createTtlIndex(collection: Collection<RecordDoc> | Collection<ConsumptionDoc>): Promise<boolean> {
    try {
      await collection.createIndex({ expiresAt: 1 }, { expireAfterSeconds: 0 });
      return true;
    } catch (error) {
      if (isNotImplemented(error)) return false;
      throw error;
    }
  }

  async function createIndexes(): Promise<IndexReport> {
    const ttl = await Promise.all(
      allCollections().map(async (collection) => {
        if (collection !== collections.consumptions) {
          // One index per command: FerretDB v1.24.2 drops the connection (a server-side
          // panic) when one createIndexes names several indexes that all exist already.
          for (const field of ['grantId', 'uid', 'userCode', 'clientId'] as const) {
            await collection.createIndex({ ns: 1, [field]: 1 });
          }
        }
        return createTtlIndex(collection);
      }),
    );
    return { ttl: ttl.every(Boolean) };
  }

  async function sweepOnce(): Promise<number> {
    const now = new Date();
    const counts = await Promise.all(
      allCollections().map(async (collection) => (await collection.deleteMany({ expiresAt: { $lte: now } })).deletedCount),
    );
    return counts.reduce((sum, count) => sum + count, 0);
  }

  function sweepExpired(): Promise<number> {
    sweeping ??= sweepOnce().finally(() => {
      sweeping = undefined;
    });
    return sweeping;
  }

  return {
    forNamespace(namespace) {
      assertNamespace(namespace);
      let store = stores.get(namespace);
      if (store === undefined) {
        store = new MongoModelStore(namespace, collections);
        stores.set(namespace, store);
      }
      return store;
    },
    ensureIndexes() {
      indexes ??= createIndexes().catch((error: unknown) => {
        indexes = undefined; // let a later call retry
        throw error;
      });
      return indexes;
    },
    sweepExpired,
    startSweeper() {
      if (timer !== undefined) return;
      timer = setInterval(() => {
        sweepExpired().catch(onSweepError);
      }, sweepIntervalMs);
      timer.unref();
    },
    async close() {
      clearInterval(timer);
      timer = undefined;
      await sweeping?.catch(() => {});
    },
  };
}
