import type { Collection, Db } from 'mongodb';
import { isDuplicateKeyError } from '../storage/mongo/duplicate-key.ts';

/**
 * One link of a tenant's audit chain, as stored in `audit_events`: the events (1..N, in the
 * order they were recorded) that one insert wrote (group commit, audit-chain.ts).
 */
export interface AuditLinkDocument {
  _id: string;
  tenant: string;
  seq: number;
  /** When the link was written (every event in it was recorded at most one insert earlier). */
  at: string;
  events: Record<string, unknown>[];
  prevHash: string;
  hash: string;
}

/** One event as an operator's query returns it: where it sits in the chain, and its link's time and hash. */
export interface AuditEventRecord {
  /** The link's seq. */
  seq: number;
  /** The event's position in its link, from 0. */
  index: number;
  at: string;
  /** The link's hash. */
  hash: string;
  event: Record<string, unknown>;
}

/** `<tenant>:head`: where an append ended. Only a hint for finding the head fast: the chain is the truth. */
interface AuditHeadHint {
  _id: string;
  seq: number;
}

type AuditDocument = AuditLinkDocument | AuditHeadHint;

export const AUDIT_COLLECTION = 'audit_events';

/** Sequence numbers are zero-padded in `_id` so that `_id` order is chain order. */
export function auditEventId(tenant: string, seq: number): string {
  return `${tenant}:${String(seq).padStart(12, '0')}`;
}

/**
 * The collection behind the audit chain. Every read is by `_id` (FerretDB scans on any other
 * field), except `firstAfter` and `query`, which only operators use.
 */
export interface AuditEventStore {
  /** Inserts one link; false when that `_id` (tenant and seq) exists already: the race's loser. */
  insert(doc: AuditLinkDocument): Promise<boolean>;
  get(tenant: string, seq: number): Promise<AuditLinkDocument | undefined>;
  /** The first link after `seq` when there is one: a gap's far side (a scan; for verify only). */
  firstAfter(tenant: string, seq: number): Promise<AuditLinkDocument | undefined>;
  headHint(tenant: string): Promise<number>;
  /** Best effort; FerretDB's conditional updates are not atomic, so a hint may lag, never lead. */
  setHeadHint(tenant: string, seq: number): Promise<void>;
  /** An operator's query (the admin API): a tenant's events in chain order, filtered; a scan on FerretDB. */
  query(tenant: string, filter: AuditQuery): Promise<AuditEventRecord[]>;
}

export interface AuditQuery {
  /** Only events of these types. */
  readonly types?: readonly string[];
  /** ISO 8601 bounds on the event's (its link's) time, inclusive. */
  readonly from?: string;
  readonly to?: string;
  /** Events after this one (the previous page's last): its link's seq and its index there. */
  readonly after?: { readonly seq: number; readonly index: number };
  readonly limit: number;
}

/** Links a query cursor fetches at once: a page of 500 events may sit in one link or in 500. */
const QUERY_BATCH = 50;

export function createMongoAuditEventStore(db: Db): AuditEventStore {
  const collection = db.collection<AuditDocument>(AUDIT_COLLECTION);
  const links = collection as unknown as Collection<AuditLinkDocument>;
  return {
    async insert(doc) {
      try {
        await links.insertOne(doc);
        return true;
      } catch (err) {
        if (isDuplicateKeyError(err)) return false;
        throw err;
      }
    },
    async get(tenant, seq) {
      const doc = await links.findOne({ _id: auditEventId(tenant, seq) });
      return doc ?? undefined;
    },
    async firstAfter(tenant, seq) {
      const doc = await links.find({ tenant, seq: { $gt: seq } }).sort({ seq: 1 }).limit(1).next();
      return doc ?? undefined;
    },
    async headHint(tenant) {
      const hint = await collection.findOne({ _id: `${tenant}:head` });
      return hint && 'seq' in hint && typeof hint.seq === 'number' && !('tenant' in hint) ? hint.seq : 0;
    },
    async query(tenant, { types, from, to, after, limit }) {
      // Links are selected by the server (`events.type` matches inside the array, on FerretDB
      // too), their events by type here: a link that matches may hold other events as well.
      // `at` is stored as ISO 8601 UTC text, whose string order is time order.
      const at = { ...(from === undefined ? {} : { $gte: from }), ...(to === undefined ? {} : { $lte: to }) };
      const cursor = links.find({
        tenant,
        seq: after === undefined ? { $gt: 0 } : { $gte: after.seq },
        ...(types === undefined ? {} : { 'events.type': { $in: [...types] } }),
        ...(from === undefined && to === undefined ? {} : { at }),
      }).sort({ seq: 1 }).batchSize(QUERY_BATCH);
      const wanted = types === undefined ? undefined : new Set(types);
      const found: AuditEventRecord[] = [];
      try {
        for await (const link of cursor) {
          for (const [index, event] of link.events.entries()) {
            if (after !== undefined && link.seq === after.seq && index <= after.index) continue;
            if (wanted && !wanted.has(String(event.type))) continue;
            found.push({ seq: link.seq, index, at: link.at, hash: link.hash, event });
            if (found.length === limit) return found;
          }
        }
        return found;
      } finally {
        await cursor.close();
      }
    },
    async setHeadHint(tenant, seq) {
      await collection.updateOne({ _id: `${tenant}:head` }, { $max: { seq } }, { upsert: true }).catch((err: unknown) => {
        // Two first appends racing on the upsert: the other one wrote the hint.
        if (!isDuplicateKeyError(err)) throw err;
      });
    },
  };
}
