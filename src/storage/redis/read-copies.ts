import { randomBytes } from 'node:crypto';
import type { ModelName, ModelStore, Payload, RecordStore, StoredRecord } from '../model-store.ts';
import { expiresAtFrom, indexedFields, isLive } from '../shared/records.ts';
import { CorruptRecordError } from '../shared/store-errors.ts';
import { isStoreUnavailable } from '../unavailable.ts';
import { Script } from './lua-script.ts';
import type { RedisClient } from './redis-model-store.ts';

/**
 * Redis read copies of the durable records that introspection and the token endpoint read
 * on every request (STORES.md: "give opaque access tokens a Redis read copy while MongoDB
 * stays the source of truth"). MongoDB is written first and stays the truth; Redis holds,
 * per record, one key whose value says what a reader may believe without asking MongoDB:
 *
 *   P:{<ns>:<Model>:<id>}:copy      '{…}'  a copy: JSON {e: expiry epoch ms | null, p: payload}
 *                                   '-'    known absent (a miss is cached too: oidc-provider's
 *                                          introspection looks every token up in three models)
 *                                   '!'    tombstone: destroyed or revoked, never filled over
 *                                   '?<n>' changed: ask MongoDB (written after every upsert)
 *   P:{<ns>:<grantId>}:copies-of-grant    sorted set of `<Model>:<id>` copied, scored by the
 *   P:{<ns>:<clientId>}:copies-of-client  copy's expiry; the set expires with its last member
 *   P:{<ns>:<grantId>}:revoked-grant      group tombstones: while present, no copy of a record
 *   P:{<ns>:<clientId>}:revoked-client    of that grant / client is made
 *
 * Rules that keep a revoked record from ever being served from a copy:
 * - A copy is filled only by compare-and-set from the exact value the reader saw before it
 *   asked MongoDB (no key, or one '?<n>' marker): anything written meanwhile (a tombstone, a
 *   newer marker, another copy) wins, so a stale MongoDB read is never cached.
 * - Before filling, the reader registers the record in its grant's and client's sets, in
 *   one script per set that first checks the group tombstone (a set and its tombstone share
 *   a hash slot, so this works on Redis Cluster). A revocation sets the group tombstone and
 *   lists the set in one script, tombstones every listed record's key, and only then deletes
 *   from MongoDB. A reader registered before the revocation is listed, so its key is a
 *   tombstone before the revocation returns and its fill fails; one registering after it
 *   sees the group tombstone and makes no copy. After the revocation returns, every read
 *   says gone: a listed key is a tombstone, and anything else asks MongoDB.
 * - destroy() writes the record's tombstone, then deletes from MongoDB.
 * - upsert() and consume() write MongoDB, then a fresh '?<n>' marker (also over a tombstone:
 *   MongoDB has the record again, and readers go there). An upsert that found no key (or a
 *   cached miss) then fills a copy itself, as a reader would from that marker (write-through
 *   of new tokens).
 * - Expiry: a copy keeps the record's expiry and every read checks it; a key lives at most
 *   `maxAgeMs` (default 5 min; then the copy is filled again from MongoDB). Tombstones, group
 *   ones included, live `maxAgeMs` too: as long as any copy they could shadow, and far longer
 *   than a reader's MongoDB round trip.
 * - Redis unreachable: reads fall back to MongoDB (safe: a revocation that succeeded has
 *   deleted the record there), upserts carry on (#markChanged), and destroy and revocations
 *   fail (503), as they must not go unrecorded.
 */

/** Models read on every token request or introspection. Client has its per-node cache. */
export const COPIED_MODELS: ReadonlySet<ModelName> = new Set<ModelName>(['AccessToken', 'ClientCredentials', 'RefreshToken', 'Grant']);

const TOMBSTONE = '!';
const ABSENT = '-';
const CHANGED = '?';
/** A member's score runs this much past its copy's expiry: the fill comes after the registration. */
const MEMBER_MARGIN_MS = 10_000;

/**
 * Compare-and-set: fill a key only if it still holds what the reader saw ('' for no key).
 * KEYS[1] copy key; ARGV[1] expected; ARGV[2] value; ARGV[3] ttl ms.
 */
const FILL = new Script(`
local current = redis.call('GET', KEYS[1])
if current == false then current = '' end
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`);

/**
 * Registers a copy in its group unless the group is revoked; prunes expired members and
 * lets the set live as long as its last member.
 * KEYS[1] group set; KEYS[2] group tombstone; ARGV[1] member; ARGV[2] score (epoch ms); ARGV[3] now.
 */
const REGISTER = new Script(`
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIREAT', KEYS[1], math.floor(tonumber(last[2]))) end
return 1
`);

/**
 * Sets a group tombstone and lists the group's members (of the given models only, when
 * any are given). Members stay listed: a revocation retried after a failure tombstones
 * them again.
 * KEYS[1] group set; KEYS[2] group tombstone; ARGV[1] tombstone ttl ms; ARGV[2..] models.
 */
const REVOKE_GROUP = new Script(`
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
if #ARGV == 1 then return members end
local chosen = {}
for _, member in ipairs(members) do
  for i = 2, #ARGV do
    if string.sub(member, 1, #ARGV[i] + 1) == ARGV[i] .. ':' then
      table.insert(chosen, member)
      break
    end
  end
end
return chosen
`);

export interface RedisReadCopiesOptions {
  keyPrefix?: string;
  /** Longest life of a copy, a known-absent entry and a tombstone. Default 300 000 (5 min). */
  maxAgeMs?: number;
}

export interface RedisReadCopies {
  /** The durable store of one namespace with read copies in front of it. */
  wrap(namespace: string, inner: RecordStore): ModelStore;
}

interface Copy {
  expiresAt: number | undefined;
  payload: Payload;
}

function parseCopy(text: string, where: string): Copy {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CorruptRecordError(where, 'read copy is not JSON');
  }
  if (typeof value !== 'object' || value === null || !('p' in value) || !('e' in value)) {
    throw new CorruptRecordError(where, 'read copy has no payload');
  }
  const { e, p } = value as { e: unknown; p: unknown };
  if (e !== null && typeof e !== 'number') throw new CorruptRecordError(where, 'read copy expiry is not a number');
  if (typeof p !== 'object' || p === null || Array.isArray(p)) throw new CorruptRecordError(where, 'read copy payload is not an object');
  return { expiresAt: e ?? undefined, payload: p as Payload };
}

class ReadCopyStore implements ModelStore {
  readonly #redis: RedisClient;
  readonly #prefix: string;
  readonly #ns: string;
  readonly #inner: RecordStore;
  readonly #maxAgeMs: number;

  constructor(redis: RedisClient, prefix: string, namespace: string, inner: RecordStore, maxAgeMs: number) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#ns = namespace;
    this.#inner = inner;
    this.#maxAgeMs = maxAgeMs;
  }

  async upsert(model: ModelName, id: string, payload: Payload, expiresIn?: number): Promise<void> {
    await this.#inner.upsert(model, id, payload, expiresIn);
    if (!COPIED_MODELS.has(model)) return;
    const marked = await this.#markChanged(model, id);
    // Write-through, for a record new to Redis only (no key, or a cached miss): the first
    // reader of a new token (its introspection, the next refresh rotation, its revocation)
    // finds it in Redis instead of asking MongoDB, which on FerretDB scans. Filled exactly as a
    // reader fills, from the marker just written: a tombstone or a newer change written since
    // wins, and a group under revocation gets no copy. A re-saved record (a copy or marker was
    // there) or one destroyed lately (a tombstone) gets the marker alone: a destroy racing the
    // re-save must leave readers asking MongoDB, never a copy (a re-saved copy under another
    // grant or client leaves the old one's set first). A copy never decides "used once":
    // consume() asks MongoDB.
    if (marked === undefined) return;
    const { previous, marker } = marked;
    if (previous !== null && previous !== ABSENT) {
      if (!previous.startsWith(CHANGED) && previous !== TOMBSTONE) await this.#leaveOldGroups(model, id, previous, payload);
      return;
    }
    try {
      await this.#fill(model, id, this.#copyKey(model, id), marker, { payload, expiresAt: expiresAtFrom(expiresIn, Date.now()) });
    } catch (error) {
      if (!isStoreUnavailable(error)) throw error;
    }
  }

  async find(model: ModelName, id: string): Promise<Payload | undefined> {
    if (!COPIED_MODELS.has(model)) return this.#inner.find(model, id);
    const key = this.#copyKey(model, id);
    let seen: string | null;
    try {
      seen = await this.#redis.get(key);
    } catch (error) {
      if (!isStoreUnavailable(error)) throw error;
      return this.#inner.find(model, id);
    }
    if (seen === TOMBSTONE || seen === ABSENT) return undefined;
    if (seen !== null && !seen.startsWith(CHANGED)) {
      const copy = parseCopy(seen, key);
      return isLive(copy.expiresAt, Date.now()) ? copy.payload : undefined;
    }
    const record = await this.#inner.findRecord(model, id);
    try {
      await this.#fill(model, id, key, seen ?? '', record);
    } catch (error) {
      if (!isStoreUnavailable(error)) throw error;
    }
    return record?.payload;
  }

  findByUid(model: ModelName, uid: string): Promise<Payload | undefined> {
    return this.#inner.findByUid(model, uid);
  }

  findByUserCode(model: ModelName, userCode: string): Promise<Payload | undefined> {
    return this.#inner.findByUserCode(model, userCode);
  }

  async consume(model: ModelName, id: string): Promise<boolean> {
    const won = await this.#inner.consume(model, id);
    if (won && COPIED_MODELS.has(model)) await this.#markChanged(model, id);
    return won;
  }

  async destroy(model: ModelName, id: string): Promise<void> {
    if (COPIED_MODELS.has(model)) await this.#redis.set(this.#copyKey(model, id), TOMBSTONE, 'PX', this.#maxAgeMs);
    await this.#inner.destroy(model, id);
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    await this.#revokeGroup(this.#groupKeys('grant', grantId), undefined);
    await this.#inner.revokeByGrantId(grantId);
  }

  async revokeByClientId(clientId: string, models?: readonly ModelName[]): Promise<void> {
    const copied = models?.filter((model) => COPIED_MODELS.has(model));
    if (copied === undefined || copied.length > 0) await this.#revokeGroup(this.#groupKeys('client', clientId), copied);
    await this.#inner.revokeByClientId(clientId, models);
  }

  async #revokeGroup(keys: [string, string], models: readonly ModelName[] | undefined): Promise<void> {
    const listed = await REVOKE_GROUP.run(this.#redis, keys, [this.#maxAgeMs, ...(models ?? [])]);
    if (!Array.isArray(listed)) throw new CorruptRecordError(keys[0], 'revocation listed no members');
    const members = listed.filter((member): member is string => typeof member === 'string');
    // One command per key: on Redis Cluster the members' keys sit on different slots.
    await Promise.all(members.map(async (member) => {
      const separator = member.indexOf(':');
      const model = member.slice(0, separator) as ModelName;
      if (!COPIED_MODELS.has(model)) throw new CorruptRecordError(keys[0], `member ${JSON.stringify(member)}`);
      await this.#redis.set(this.#copyKey(model, member.slice(separator + 1)), TOMBSTONE, 'PX', this.#maxAgeMs);
    }));
  }

  /**
   * An unreachable Redis does not fail the write MongoDB already took: new records (every
   * token) have no older copy to correct, and readers fall back to MongoDB meanwhile. A
   * changed record (a Grant, a consumed refresh token) may then be read from an older copy
   * for up to maxAgeMs once a persistent Redis is back; revocations never go unrecorded.
   */
  async #markChanged(model: ModelName, id: string): Promise<{ marker: string; previous: string | null } | undefined> {
    const marker = CHANGED + randomBytes(9).toString('base64url');
    try {
      const previous = await this.#redis.set(this.#copyKey(model, id), marker, 'PX', this.#maxAgeMs, 'GET');
      return { marker, previous };
    } catch (error) {
      if (!isStoreUnavailable(error)) throw error;
      return undefined;
    }
  }

  /**
   * A record re-saved with another grant or client (its copy was registered under the old
   * ones) leaves their sets, so revoking the old grant does not tombstone a record that no
   * longer belongs to it. A revocation that listed it first has tombstoned it already: the
   * record then reads as revoked until MongoDB is asked again (the safe side).
   */
  async #leaveOldGroups(model: ModelName, id: string, previous: string, payload: Payload): Promise<void> {
    let old: ReturnType<typeof indexedFields>;
    try {
      old = indexedFields(parseCopy(previous, this.#copyKey(model, id)).payload);
    } catch {
      return;
    }
    const now = indexedFields(payload);
    const member = `${model}:${id}`;
    const left: Array<Promise<unknown>> = [];
    if (old.grantId !== undefined && old.grantId !== now.grantId) left.push(this.#redis.zrem(this.#groupKeys('grant', old.grantId)[0], member));
    if (old.clientId !== undefined && old.clientId !== now.clientId) left.push(this.#redis.zrem(this.#groupKeys('client', old.clientId)[0], member));
    try {
      await Promise.all(left);
    } catch (error) {
      if (!isStoreUnavailable(error)) throw error;
    }
  }

  async #fill(model: ModelName, id: string, key: string, seen: string, record: StoredRecord | undefined): Promise<void> {
    const now = Date.now();
    if (record === undefined) {
      await FILL.run(this.#redis, [key], [seen, ABSENT, this.#maxAgeMs]);
      return;
    }
    const { expiresAt, payload } = record;
    if (!isLive(expiresAt, now)) return;
    const ttl = Math.max(1, Math.min(this.#maxAgeMs, expiresAt === undefined ? this.#maxAgeMs : expiresAt - now));
    const member = `${model}:${id}`;
    const { grantId, clientId } = indexedFields(payload);
    const groups: Array<[string, string]> = [];
    if (grantId !== undefined) groups.push(this.#groupKeys('grant', grantId));
    if (clientId !== undefined) groups.push(this.#groupKeys('client', clientId));
    const registered = await Promise.all(
      groups.map((keys) => REGISTER.run(this.#redis, keys, [member, now + ttl + MEMBER_MARGIN_MS, now])),
    );
    // A group under revocation: answer from MongoDB, copy nothing.
    if (registered.some((result) => result !== 1)) return;
    await FILL.run(this.#redis, [key], [seen, JSON.stringify({ e: expiresAt ?? null, p: payload }), ttl]);
  }

  #copyKey(model: ModelName, id: string): string {
    return `${this.#prefix}:{${this.#ns}:${model}:${id}}:copy`;
  }

  #groupKeys(kind: 'grant' | 'client', id: string): [string, string] {
    const tag = `${this.#prefix}:{${this.#ns}:${id}}`;
    return [`${tag}:copies-of-${kind}`, `${tag}:revoked-${kind}`];
  }
}

/** Read copies on a shared ioredis connection (standalone, Sentinel or Cluster); the caller owns it. */
export function createRedisReadCopies(redis: RedisClient, options: RedisReadCopiesOptions = {}): RedisReadCopies {
  const prefix = options.keyPrefix ?? 'castellan';
  const maxAgeMs = options.maxAgeMs ?? 300_000;
  const wrapped = new Map<string, { inner: RecordStore; outer: ModelStore }>();
  return {
    wrap(namespace, inner) {
      const known = wrapped.get(namespace);
      if (known?.inner === inner) return known.outer;
      const outer = new ReadCopyStore(redis, prefix, namespace, inner, maxAgeMs);
      wrapped.set(namespace, { inner, outer });
      return outer;
    },
  };
}
