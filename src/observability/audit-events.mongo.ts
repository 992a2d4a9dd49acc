import type { Collection, Db } from 'mongodb';
import type { Settings } from '../config/settings.ts';
import { isDuplicateKeyError } from '../storage/mongo/duplicate-key.ts';

/** One link of a tenant's audit chain, as stored in `audit_events`. */
export interface AuditEventDocument {
  _id: string;
  tenant: string;
  seq: number;
  at: string;
  event: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

/** `<tenant>:head`: where the last append ended. Only a hint for finding the head fast: the chain is the truth. */
interface AuditHeadHint {
  _id: string;
  seq: number;
}

type AuditDocument = AuditEventDocument | AuditHeadHint;

export const AUDIT_COLLECTION = 'audit_events';

/** Sequence numbers are zero-padded in `_id` so that `_id` order is chain order. */
export function auditEventId(tenant: string, seq: number): string {
  return `${tenant}:${String(seq).padStart(12, '0')}`;
}

/**
 * The collection behind the audit chain. Every read is by `_id` (FerretDB scans on any other
 * field), except `firstAfter`, which only the operator's verify command uses.
 */
export interface AuditEventStore {
  /** Inserts one link; false when that `_id` (tenant and seq) exists already: the race's loser. */
  insert(doc: AuditEventDocument): Promise<boolean>;
  get(tenant: string, seq: number): Promise<AuditEventDocument | undefined>;
  /** The first link after `seq` when there is one: a gap's far side (a scan; for verify only). */
  firstAfter(tenant: string, seq: number): Promise<AuditEventDocument | undefined>;
  headHint(tenant: string): Promise<number>;
  /** Best effort; FerretDB's conditional updates are not atomic, so a hint may lag, never lead. */
  setHeadHint(tenant: string, seq: number): Promise<void>;
  /** An operator's query (the admin API): a tenant's events in chain order, filtered; a scan on FerretDB. */
  query(tenant: string, filter: AuditQuery): Promise<AuditEventDocument[]>;
}

export interface AuditQuery {
  /** Only events of these types. */
  readonly types?: readonly string[];
  /** ISO 8601 bounds on the event's time, inclusive. */
  readonly from?: string;
  readonly to?: string;
  /** Events after this sequence number (the previous page's last). */
  readonly afterSeq?: number;
  readonly limit: number;
}

export function createMongoAuditEventStore(db: Db): AuditEventStore {
  const collection = db.collection<AuditDocument>(AUDIT_COLLECTION);
  const events = collection as unknown as Collection<AuditEventDocument>;
  return {
    async insert(doc) {
      try {
        await events.insertOne(doc);
        return true;
      } catch (err) {
        if (isDuplicateKeyError(err)) return false;
        throw err;
      }
    },
    async get(tenant, seq) {
      const doc = await events.findOne({ _id: auditEventId(tenant, seq) });
      return doc ?? undefined;
    },
    async firstAfter(tenant, seq) {
      const doc = await events.find({ tenant, seq: { $gt: seq } }).sort({ seq: 1 }).limit(1).next();
      return doc ?? undefined;
    },
    async headHint(tenant) {
      const hint = await collection.findOne({ _id: `${tenant}:head` });
      return hint && 'seq' in hint && typeof hint.seq === 'number' && !('tenant' in hint) ? hint.seq : 0;
    },
    async query(tenant, { types, from, to, afterSeq, limit }) {
      // `at` is stored as ISO 8601 UTC text, whose string order is time order.
      const at = { ...(from === undefined ? {} : { $gte: from }), ...(to === undefined ? {} : { $lte: to }) };
      return events.find({
        tenant,
        seq: { $gt: afterSeq ?? 0 },
        ...(types === undefined ? {} : { 'event.type': { $in: [...types] } }),
        ...(from === undefined && to === undefined ? {} : { at }),
      }).sort({ seq: 1 }).limit(limit).toArray();
    },
    async setHeadHint(tenant, seq) {
      await collection.updateOne({ _id: `${tenant}:head` }, { $max: { seq } }, { upsert: true }).catch((err: unknown) => {
        // Two first appends racing on the upsert: the other one wrote the hint.
        if (!isDuplicateKeyError(err)) throw err;
      });
    },
  };
}
