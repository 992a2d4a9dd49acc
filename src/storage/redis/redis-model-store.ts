import type { Cluster, Redis } from 'ioredis';
import type { ModelName, ModelStore, Payload } from '../model-store.ts';
import { MODEL_NAMES } from '../model-store.ts';
import {
  assertNamespace,
  epochSeconds,
  expiresAtFrom,
  indexedFields,
  isLive,
  parsePayload,
  serializePayload,
} from '../shared/records.ts';
import { CorruptRecordError } from '../shared/store-errors.ts';
import { Script } from './lua-script.ts';

/**
 * The Redis backend for short-lived, hot models (ARCHITECTURE.md "Storage"). Keys, with
 * P the key prefix (default `castellan`):
 *
 *   P:<ns>:<Model>:<id>              hash { payload: JSON, expiresAt?: epoch ms, consumed?: epoch s }
 *   P:<ns>:uid:<Model>:<uid>         → id, same TTL as the record
 *   P:<ns>:userCode:<Model>:<code>   → id, same TTL as the record
 *   P:{<ns>:<grantId>}:grant         set of `<Model>:<id>`, living as long as its longest member
 *   P:{<ns>:<clientId>}:client       sorted set of `<Model>:<id>` scored by expiry (epoch ms, inf
 *                                    for none); expired members are pruned on every add
 *
 * Namespaces hold no ':' (assertNamespace), and `uid`/`userCode` are no model names, so no
 * two kinds of key can collide. Every script and transaction touches one key only, so the
 * store works unchanged on Redis Cluster; the grant set's hash tag keeps a grant's set on
 * one slot whatever the prefix.
 *
 * A record is a hash rather than one JSON string so that consume can set `consumed`
 * without re-encoding the payload in Lua: cjson turns an empty array into `{}`.
 */

export type RedisClient = Redis | Cluster;

/**
 * Atomic single use: refuse a missing, expired or already consumed record (a `consumed`
 * field, or one inside the payload as oidc-provider saved it), else set `consumed`. HSET
 * leaves the key's TTL alone. Returns 1 for the one winner, 0 for everyone else.
 * KEYS[1] record; ARGV[1] now (epoch ms); ARGV[2] consumed (epoch s).
 */
const CONSUME = new Script(`
local f = redis.call('HMGET', KEYS[1], 'payload', 'expiresAt', 'consumed')
if not f[1] or f[3] then return 0 end
if f[2] and tonumber(f[2]) <= tonumber(ARGV[1]) then return 0 end
local consumed = cjson.decode(f[1]).consumed
if consumed ~= nil and consumed ~= cjson.null then return 0 end
redis.call('HSET', KEYS[1], 'consumed', ARGV[2])
return 1
`);

/**
 * Adds a member to a grant set and stretches the set's life to cover it: the set must
 * outlive every member, or revokeByGrantId would miss some. PEXPIRE's GT flag needs
 * Redis 7 and treats "no TTL" as infinite, hence the explicit logic.
 * KEYS[1] grant set; ARGV[1] member; ARGV[2] member TTL in ms, 0 for none.
 */
const ADD_TO_GRANT = new Script(`
local existed = redis.call('EXISTS', KEYS[1])
redis.call('SADD', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl == 0 then
  redis.call('PERSIST', KEYS[1])
elseif existed == 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  local current = redis.call('PTTL', KEYS[1])
  if current >= 0 and current < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
end
return 1
`);

/**
 * Adds a member to a client's index, scored by its expiry, and prunes members already
 * expired: a busy client issues codes all day, so an unpruned set would only grow. The
 * index lives as long as its longest member. A sorted set, unlike the grant set, because a
 * client (unlike a grant) lives for months.
 * KEYS[1] client index; ARGV[1] member; ARGV[2] expiry (epoch ms) or 'inf'; ARGV[3] now (epoch ms).
 */
const ADD_TO_CLIENT = new Script(`
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] == nil then return 0 end
if last[2] == 'inf' then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIREAT', KEYS[1], math.floor(tonumber(last[2])))
end
return 1
`);

/** Deletes an index key only while it still points at the record being removed. */
const DELETE_IF_EQUAL = new Script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`);

interface StoredRecord {
  payload: Payload;
  expiresAt: number | undefined;
  consumed: number | undefined;
}

function optionalNumber(value: string | undefined, where: string, field: string): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isFinite(number)) throw new CorruptRecordError(where, `${field} is not a number`);
  return number;
}

function parseRecord(hash: Record<string, string>, where: string): StoredRecord | undefined {
  if (hash['payload'] === undefined) return undefined; // HGETALL of a missing key: {}
  return {
    payload: parsePayload(hash['payload'], where),
    expiresAt: optionalNumber(hash['expiresAt'], where, 'expiresAt'),
    consumed: optionalNumber(hash['consumed'], where, 'consumed'),
  };
}

function isModelName(value: string): value is ModelName {
  return (MODEL_NAMES as readonly string[]).includes(value);
}

/** ioredis reports a failed command inside MULTI in its result tuple, not by rejecting. */
async function execOrThrow(results: Promise<Array<[Error | null, unknown]> | null>): Promise<void> {
  for (const [error] of (await results) ?? []) if (error !== null) throw error;
}

class RedisModelStore implements ModelStore {
  readonly #redis: RedisClient;
  readonly #prefix: string;
  readonly #ns: string;

  constructor(redis: RedisClient, prefix: string, namespace: string) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#ns = namespace;
  }

  async upsert(model: ModelName, id: string, payload: Payload, expiresIn?: number): Promise<void> {
    const now = Date.now();
    const expiresAt = expiresAtFrom(expiresIn, now);
    if (!isLive(expiresAt, now)) {
      await this.destroy(model, id);
      return;
    }
    const ttlMs = expiresAt === undefined ? undefined : expiresAt - now;
    const { grantId, uid, userCode, clientId } = indexedFields(payload);
    const key = this.#recordKey(model, id);

    // Lookups and grant membership first, the record last: a failure in between leaves
    // nothing a revocation could miss (STORES.md: the record that authorises goes last).
    await Promise.all([
      uid === undefined ? undefined : this.#setIndex(this.#uidKey(model, uid), id, ttlMs),
      userCode === undefined ? undefined : this.#setIndex(this.#userCodeKey(model, userCode), id, ttlMs),
      grantId === undefined
        ? undefined
        : ADD_TO_GRANT.run(this.#redis, [this.#grantKey(grantId)], [`${model}:${id}`, ttlMs ?? 0]),
      clientId === undefined
        ? undefined
        : ADD_TO_CLIENT.run(this.#redis, [this.#clientKey(clientId)], [`${model}:${id}`, expiresAt ?? 'inf', now]),
    ]);

    // HSET keeps an existing `consumed` field: a consumed id stays consumed when re-saved.
    const fields: Record<string, string> = { payload: serializePayload(payload) };
    if (expiresAt !== undefined) fields['expiresAt'] = String(expiresAt);
    const tx = this.#redis.multi().hset(key, fields);
    if (ttlMs === undefined) tx.hdel(key, 'expiresAt').persist(key);
    else tx.pexpire(key, ttlMs);
    await execOrThrow(tx.exec());
  }

  async find(model: ModelName, id: string): Promise<Payload | undefined> {
    const key = this.#recordKey(model, id);
    const record = parseRecord(await this.#redis.hgetall(key), key);
    if (record === undefined || !isLive(record.expiresAt, Date.now())) return undefined;
    if (record.consumed !== undefined) record.payload.consumed = record.consumed;
    return record.payload;
  }

  async findByUid(model: ModelName, uid: string): Promise<Payload | undefined> {
    return this.#findByIndex(model, this.#uidKey(model, uid), 'uid', uid);
  }

  async findByUserCode(model: ModelName, userCode: string): Promise<Payload | undefined> {
    return this.#findByIndex(model, this.#userCodeKey(model, userCode), 'userCode', userCode);
  }

  async consume(model: ModelName, id: string): Promise<boolean> {
    const now = Date.now();
    const won = await CONSUME.run(this.#redis, [this.#recordKey(model, id)], [now, epochSeconds(now)]);
    return won === 1;
  }

  async destroy(model: ModelName, id: string): Promise<void> {
    await this.#remove(model, id);
  }

  /**
   * Removes a record, with its lookups and index entries; with `carrying`, only while the
   * record still carries that grantId / clientId (it may have been re-saved since it was
   * listed).
   */
  async #remove(model: ModelName, id: string, carrying?: { grantId?: string; clientId?: string }): Promise<void> {
    const key = this.#recordKey(model, id);
    const stored = await this.#redis.hget(key, 'payload');
    const fields = stored === null ? {} : indexedFields(parsePayload(stored, key));
    if (stored !== null && carrying !== undefined) {
      if (carrying.grantId !== undefined && fields.grantId !== carrying.grantId) return;
      if (carrying.clientId !== undefined && fields.clientId !== carrying.clientId) return;
    }
    // The record grants access, so it goes first; its lookups and index entries follow.
    await this.#redis.del(key);
    const { grantId, uid, userCode, clientId } = fields;
    const member = `${model}:${id}`;
    await Promise.all([
      uid === undefined ? undefined : DELETE_IF_EQUAL.run(this.#redis, [this.#uidKey(model, uid)], [id]),
      userCode === undefined ? undefined : DELETE_IF_EQUAL.run(this.#redis, [this.#userCodeKey(model, userCode)], [id]),
      grantId === undefined ? undefined : this.#redis.srem(this.#grantKey(grantId), member),
      clientId === undefined ? undefined : this.#redis.zrem(this.#clientKey(clientId), member),
    ]);
  }

  /**
   * Members are deleted before they leave the set, so a failure half way leaves them
   * listed for the next attempt; a member added meanwhile stays listed.
   */
  async revokeByGrantId(grantId: string): Promise<void> {
    const grantKey = this.#grantKey(grantId);
    const members = await this.#redis.smembers(grantKey);
    // A member re-saved under another grant since it joined this set is not revoked.
    await Promise.all(members.map((member) => this.#removeMember(grantKey, member, { grantId })));
    if (members.length > 0) await this.#redis.srem(grantKey, ...members);
  }

  /** Same order as revokeByGrantId: records first, then their index entries. */
  async revokeByClientId(clientId: string, models?: readonly ModelName[]): Promise<void> {
    const clientKey = this.#clientKey(clientId);
    const listed = await this.#redis.zrange(clientKey, '0', '-1');
    const members = models === undefined ? listed : listed.filter((member) => models.some((m) => member.startsWith(`${m}:`)));
    await Promise.all(members.map((member) => this.#removeMember(clientKey, member, { clientId })));
    if (members.length > 0) await this.#redis.zrem(clientKey, ...members);
  }

  async #removeMember(indexKey: string, member: string, carrying: { grantId?: string; clientId?: string }): Promise<void> {
    const separator = member.indexOf(':');
    const model = member.slice(0, separator);
    if (!isModelName(model)) throw new CorruptRecordError(indexKey, `member ${JSON.stringify(member)}`);
    await this.#remove(model, member.slice(separator + 1), carrying);
  }

  async #setIndex(key: string, id: string, ttlMs: number | undefined): Promise<void> {
    if (ttlMs === undefined) await this.#redis.set(key, id);
    else await this.#redis.set(key, id, 'PX', ttlMs);
  }

  /** An index key may outlive a change of the record's uid; the record has the last word. */
  async #findByIndex(
    model: ModelName,
    indexKey: string,
    field: 'uid' | 'userCode',
    value: string,
  ): Promise<Payload | undefined> {
    const id = await this.#redis.get(indexKey);
    if (id === null) return undefined;
    const payload = await this.find(model, id);
    return payload?.[field] === value ? payload : undefined;
  }

  #recordKey(model: ModelName, id: string): string {
    return `${this.#prefix}:${this.#ns}:${model}:${id}`;
  }

  #uidKey(model: ModelName, uid: string): string {
    return `${this.#prefix}:${this.#ns}:uid:${model}:${uid}`;
  }

  #userCodeKey(model: ModelName, userCode: string): string {
    return `${this.#prefix}:${this.#ns}:userCode:${model}:${userCode}`;
  }

  #grantKey(grantId: string): string {
    return `${this.#prefix}:{${this.#ns}:${grantId}}:grant`;
  }

  #clientKey(clientId: string): string {
    return `${this.#prefix}:{${this.#ns}:${clientId}}:client`;
  }
}

export interface RedisModelStoresOptions {
  /** First segment of every key. Default `castellan`; tests use a unique one per file. */
  keyPrefix?: string;
}

export interface RedisModelStores {
  forNamespace(namespace: string): ModelStore;
}

/** Stores on a shared ioredis connection (standalone, Sentinel or Cluster); the caller owns it. */
export function createRedisModelStores(redis: RedisClient, options: RedisModelStoresOptions = {}): RedisModelStores {
  const prefix = options.keyPrefix ?? 'castellan';
  const stores = new Map<string, RedisModelStore>();
  return {
    forNamespace(namespace) {
      assertNamespace(namespace);
      let store = stores.get(namespace);
      if (store === undefined) {
        store = new RedisModelStore(redis, prefix, namespace);
        stores.set(namespace, store);
      }
      return store;
    },
  };
}
