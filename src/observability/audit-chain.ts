import { createHash } from 'node:crypto';
import type { Db } from 'mongodb';
import type { Logger } from 'pino';
import type { AuditEvent, AuditSink } from './audit.ts';
import { auditEventId, createMongoAuditEventStore, type AuditEventDocument, type AuditEventStore } from './audit-events.mongo.ts';

/**
 * The tamper-evident audit log: per tenant, events are links 1, 2, 3, … of a hash chain in
 * MongoDB (`audit_events`, `_id` = `<tenant>:<seq>`), each link's hash covering the previous
 * link's hash and its own tenant, seq, time and event. Appending is an insert of the next
 * seq: the one race-safe primitive on FerretDB as on MongoDB (STORES.md), so two nodes never
 * fork a chain; the loser learns the new head (by `_id`) and tries again.
 */

/** The previous hash of link 1. */
export const GENESIS_HASH = '0'.repeat(64);

/** JSON with object keys sorted at every level and `undefined` members left out: one text per value. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((item) => (item === undefined ? 'null' : canonicalJson(item))).join(',')}]`;
  const record = value as Record<string, unknown>;
  const members = Object.keys(record)
    .filter((key) => record[key] !== undefined)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`);
  return `{${members.join(',')}}`;
}

/** hex SHA-256 over prevHash followed by the canonical JSON of {tenant, seq, at, event}. */
export function linkHash(prevHash: string, link: { tenant: string; seq: number; at: string; event: unknown }): string {
  const { tenant, seq, at, event } = link;
  return createHash('sha256').update(prevHash).update(canonicalJson({ tenant, seq, at, event })).digest('hex');
}

interface Head {
  seq: number;
  hash: string;
}

/**
 * Finds the last link by `_id` alone: from the hint, doubling steps forward while links
 * exist, then halving back. The chain is the truth; the hint only saves probes.
 */
async function findHead(store: AuditEventStore, tenant: string): Promise<Head> {
  let low = await store.headHint(tenant);
  let lowDoc = low > 0 ? await store.get(tenant, low) : undefined;
  if (!lowDoc) low = 0;
  let step = 1;
  for (;;) {
    const doc = await store.get(tenant, low + step);
    if (!doc) break;
    low += step;
    lowDoc = doc;
    step *= 2;
  }
  let high = low + step;
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    const doc = await store.get(tenant, mid);
    if (doc) {
      low = mid;
      lowDoc = doc;
    } else {
      high = mid;
    }
  }
  return { seq: low, hash: lowDoc?.hash ?? GENESIS_HASH };
}

/** How many lost insert races one append tolerates before giving up (each loss means progress elsewhere). */
const MAX_ATTEMPTS = 1_000;

export interface AuditChain {
  /** Appends one event to its tenant's chain; resolves to the link written. */
  append(event: AuditEvent): Promise<AuditEventDocument>;
  /** Waits for every append in flight. */
  drain(): Promise<void>;
}

export function createAuditChain(store: AuditEventStore, options: { now?: () => Date } = {}): AuditChain {
  const now = options.now ?? (() => new Date());
  const heads = new Map<string, Head>();
  // Appends of one tenant run one after another on this node: a node never races itself.
  const tails = new Map<string, Promise<unknown>>();

  async function appendNow(event: AuditEvent): Promise<AuditEventDocument> {
    const { tenant } = event;
    // Plain JSON, as it will read back from the store: the hash must cover what is stored.
    const stored = JSON.parse(JSON.stringify(event)) as Record<string, unknown>;
    let head = heads.get(tenant) ?? (await findHead(store, tenant));
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const seq = head.seq + 1;
      const at = now().toISOString();
      const doc: AuditEventDocument = {
        _id: auditEventId(tenant, seq),
        tenant, seq, at, event: stored, prevHash: head.hash,
        hash: linkHash(head.hash, { tenant, seq, at, event: stored }),
      };
      if (await store.insert(doc)) {
        heads.set(tenant, { seq, hash: doc.hash });
        await store.setHeadHint(tenant, seq).catch(() => undefined);
        return doc;
      }
      // Another node (or a previous run) wrote this seq: walk forward by _id to the new head.
      let next = seq;
      let found = await store.get(tenant, next);
      while (found) {
        head = { seq: found.seq, hash: found.hash };
        next += 1;
        found = await store.get(tenant, next);
      }
      heads.delete(tenant);
    }
    throw new Error(`audit chain of tenant ${tenant}: no free seq after ${MAX_ATTEMPTS} attempts`);
  }

  return {
    append(event) {
      const previous = tails.get(event.tenant) ?? Promise.resolve();
      const appended = previous.then(() => appendNow(event));
      const tail = appended.catch(() => undefined);
      tails.set(event.tenant, tail);
      void tail.then(() => {
        if (tails.get(event.tenant) === tail) tails.delete(event.tenant);
      });
      return appended;
    },
    async drain() {
      while (tails.size > 0) await Promise.all([...tails.values()]);
    },
  };
}

/**
 * The chain as an audit sink. An append that fails (MongoDB down) is logged at error level
 * with the event's type and tenant, and the request that caused it goes on: the audit trail
 * fails open, so sign-in pages keep working through a store outage. The log sink composed
 * beside it still records the event.
 */
export function createAuditChainSink(chain: AuditChain, log: Logger): AuditSink {
  return {
    async record(event) {
      try {
        await chain.append(event);
      } catch (err) {
        log.error({ err, auditType: event.type, tenant: event.tenant }, 'audit chain append failed: the event is in the log only');
      }
    },
  };
}

export type AuditProblem =
  /** A link's stored hash does not match its content: the event (or its time) was edited. */
  | 'edited'
  /** A link's prevHash is not the hash of the link before it: that link was replaced or rehashed. */
  | 'broken_link'
  /** A seq is missing while later links exist: a deletion. */
  | 'missing'
  /** A document holds another seq or tenant than its `_id` says: links were moved or reordered. */
  | 'misplaced'
  /** The head hint is past the last link: links at the end were deleted (the hint can be deleted too). */
  | 'truncated';

export type AuditVerification =
  | { ok: true; count: number; head: string }
  | { ok: false; seq: number; problem: AuditProblem; detail: string; count: number };

/**
 * Walks a tenant's chain from seq 1 by `_id`, recomputing every hash, and reports the first
 * problem. Deleting links at the end (truncation) leaves a valid shorter chain: only a head
 * hash recorded elsewhere (the printed `head`, passed back as `anchor`) shows it for sure,
 * beyond the head hint this store keeps.
 */
export async function verifyAuditEvents(store: AuditEventStore, tenant: string, options: { anchor?: string } = {}): Promise<AuditVerification> {
  const { anchor } = options;
  let anchored = anchor === undefined || anchor === GENESIS_HASH;
  let prev = GENESIS_HASH;
  for (let seq = 1; ; seq++) {
    const count = seq - 1;
    const doc = await store.get(tenant, seq);
    if (!doc) {
      const later = await store.firstAfter(tenant, seq);
      if (later) return { ok: false, seq, problem: 'missing', detail: `seq ${seq} is missing but seq ${later.seq} exists`, count };
      const hint = await store.headHint(tenant);
      if (hint > count) return { ok: false, seq, problem: 'truncated', detail: `the chain ends at seq ${count} but the head hint says ${hint}`, count };
      if (!anchored) return { ok: false, seq, problem: 'truncated', detail: `the chain ends at seq ${count} without reaching the anchored head ${anchor ?? ''}`, count };
      return { ok: true, count, head: prev };
    }
    if (doc.tenant !== tenant || doc.seq !== seq) {
      return { ok: false, seq, problem: 'misplaced', detail: `document ${doc._id} holds tenant ${String(doc.tenant)} seq ${String(doc.seq)}`, count };
    }
    if (doc.prevHash !== prev) {
      return { ok: false, seq, problem: 'broken_link', detail: `prevHash of seq ${seq} is not the hash of seq ${seq - 1}`, count };
    }
    if (linkHash(prev, { tenant, seq, at: doc.at, event: doc.event }) !== doc.hash) {
      return { ok: false, seq, problem: 'edited', detail: `seq ${seq} does not match its hash`, count };
    }
    prev = doc.hash;
    if (prev === anchor) anchored = true;
  }
}

/** `verifyAuditEvents` on a MongoDB database's `audit_events`. */
export function verifyAuditChain(db: Db, tenant: string, options: { anchor?: string } = {}): Promise<AuditVerification> {
  return verifyAuditEvents(createMongoAuditEventStore(db), tenant, options);
}
