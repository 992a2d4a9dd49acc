import { createHash } from 'node:crypto';
import type { Db } from 'mongodb';
import type { Logger } from 'pino';
import type { AuditEvent, AuditSink } from './audit.ts';
import { within } from '../shared/within.ts';
import { auditEventId, createMongoAuditEventStore, type AuditEventStore, type AuditLinkDocument } from './audit-events.mongo.ts';

/**
 * The tamper-evident audit log: per tenant, links 1, 2, 3, … of a hash chain in MongoDB
 * (`audit_events`, `_id` = `<tenant>:<seq>`), each holding 1..N events (group commit) and a
 * hash covering the previous link's hash and its own tenant, seq, time and events. Appending
 * is an insert of the next seq: the one race-safe primitive on FerretDB as on MongoDB
 * (STORES.md), so two nodes never fork a chain; the loser learns the new head (by `_id`) and
 * tries again.
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

/** hex SHA-256 over prevHash followed by the canonical JSON of {tenant, seq, at, events}. */
export function linkHash(prevHash: string, link: { tenant: string; seq: number; at: string; events: unknown }): string {
  const { tenant, seq, at, events } = link;
  return createHash('sha256').update(prevHash).update(canonicalJson({ tenant, seq, at, events })).digest('hex');
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
/** Bounds on one link: events, and their JSON size (an event bigger than that goes alone). */
export const MAX_EVENTS_PER_LINK = 500;
const MAX_LINK_BYTES = 512 * 1024;
/** How long an idle tenant's first event waits for company (group commit's linger). */
const LINGER_MS = 1;
/** The head hint is written every this many links, and otherwise this long after a link. */
const HINT_EVERY = 64;
const HINT_DELAY_MS = 1_000;

export interface AuditChain {
  /**
   * Appends one event to its tenant's chain; resolves to the link that holds it once that
   * link is stored (never earlier), and rejects when it could not be.
   */
  append(event: AuditEvent): Promise<AuditLinkDocument>;
  /** Waits for every append in flight, and for the head hints they left to write. */
  drain(): Promise<void>;
}

export interface AuditChainOptions {
  now?: () => Date;
  /** At most this many events in one link (default and ceiling MAX_EVENTS_PER_LINK). */
  maxEventsPerLink?: number;
  /** How long an idle tenant's first event waits for others to join its link (default LINGER_MS). */
  lingerMs?: number;
}

interface Pending {
  event: Record<string, unknown>;
  bytes: number;
  resolve: (link: AuditLinkDocument) => void;
  reject: (err: unknown) => void;
}

/** One tenant's appends on this node: queued events, its writer, the cached head and the head hint. */
interface TenantWriter {
  queue: Pending[];
  /** A writer is running (it empties the queue before it stops). */
  active: boolean;
  /** The last writer started, for drain(). */
  running: Promise<void> | undefined;
  head: Head | undefined;
  /** The last link this node wrote. */
  lastSeq: number;
  hintWanted: number;
  hintWritten: number;
  hinting: Promise<void> | undefined;
  hintTimer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * Group commit: a tenant's events are written by one writer per node, one link at a time.
 * The first event of an idle tenant lingers LINGER_MS (events recorded meanwhile join it);
 * events recorded while a link's insert is in flight queue, and the next link carries all of
 * them (up to the bounds), so one insert serves many events under load. Every append
 * resolves only once its link is stored. Two nodes race by insert on `_id`, as before: the
 * loser walks forward to the new head and writes the same events at the next seq. The head
 * hint is written off the append path, every HINT_EVERY links or HINT_DELAY_MS after one.
 */
export function createAuditChain(store: AuditEventStore, options: AuditChainOptions = {}): AuditChain {
  const now = options.now ?? (() => new Date());
  const lingerMs = options.lingerMs ?? LINGER_MS;
  const maxEvents = Math.min(Math.max(1, options.maxEventsPerLink ?? MAX_EVENTS_PER_LINK), MAX_EVENTS_PER_LINK);
  const writers = new Map<string, TenantWriter>();

  function writerOf(tenant: string): TenantWriter {
    let writer = writers.get(tenant);
    if (!writer) {
      writer = { queue: [], active: false, running: undefined, head: undefined, lastSeq: 0, hintWanted: 0, hintWritten: 0, hinting: undefined, hintTimer: undefined };
      writers.set(tenant, writer);
    }
    return writer;
  }

  function takeBatch(queue: Pending[]): Pending[] {
    let count = 0;
    let bytes = 0;
    for (const pending of queue) {
      if (count === maxEvents || (count > 0 && bytes + pending.bytes > MAX_LINK_BYTES)) break;
      count += 1;
      bytes += pending.bytes;
    }
    return queue.splice(0, count);
  }

  async function writeLink(tenant: string, writer: TenantWriter, events: Record<string, unknown>[]): Promise<AuditLinkDocument> {
    let head = writer.head ?? (await findHead(store, tenant));
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const seq = head.seq + 1;
      const at = now().toISOString();
      const doc: AuditLinkDocument = {
        _id: auditEventId(tenant, seq),
        tenant, seq, at, events, prevHash: head.hash,
        hash: linkHash(head.hash, { tenant, seq, at, events }),
      };
      if (await store.insert(doc)) {
        writer.head = { seq, hash: doc.hash };
        return doc;
      }
      // Another node (or a previous run) wrote this seq: walk forward by _id to the new head.
      writer.head = undefined;
      let next = seq;
      let found = await store.get(tenant, next);
      while (found) {
        head = { seq: found.seq, hash: found.hash };
        next += 1;
        found = await store.get(tenant, next);
      }
    }
    throw new Error(`audit chain of tenant ${tenant}: no free seq after ${MAX_ATTEMPTS} attempts`);
  }

  /** The head hint, written off the append path, one write in flight per tenant, the newest seq wins. */
  function hint(tenant: string, writer: TenantWriter, seq: number): void {
    writer.hintWanted = Math.max(writer.hintWanted, seq);
    if (writer.hinting || writer.hintWritten >= writer.hintWanted) return;
    writer.hinting = (async () => {
      while (writer.hintWritten < writer.hintWanted) {
        const target = writer.hintWanted;
        await store.setHeadHint(tenant, target).catch(() => undefined);
        writer.hintWritten = target;
      }
      writer.hinting = undefined;
    })();
  }

  /** After a link: the hint at once every HINT_EVERY links, else once HINT_DELAY_MS later (one timer at a time). */
  function noteLink(tenant: string, writer: TenantWriter, seq: number): void {
    writer.lastSeq = seq;
    if (seq - writer.hintWanted >= HINT_EVERY) {
      hint(tenant, writer, seq);
    } else if (!writer.hintTimer) {
      writer.hintTimer = setTimeout(() => {
        writer.hintTimer = undefined;
        hint(tenant, writer, writer.lastSeq);
      }, HINT_DELAY_MS);
      writer.hintTimer.unref();
    }
  }

  function start(tenant: string, writer: TenantWriter): void {
    writer.active = true;
    writer.running = (async () => {
      try {
        // An idle tenant's first event lingers a moment: events recorded meanwhile share its link.
        if (lingerMs > 0) await new Promise((resolve) => setTimeout(resolve, lingerMs));
        while (writer.queue.length > 0) {
          const batch = takeBatch(writer.queue);
          try {
            const link = await writeLink(tenant, writer, batch.map((pending) => pending.event));
            for (const pending of batch) pending.resolve(link);
            noteLink(tenant, writer, link.seq);
          } catch (err) {
            // Unknown whether the insert landed (a timeout may follow a write): find the head again.
            writer.head = undefined;
            for (const pending of batch) pending.reject(err);
          }
        }
      } finally {
        // In the same turn as the last look at the queue: an event queued after it starts a new writer.
        writer.active = false;
      }
    })();
  }

  return {
    append(event) {
      // Plain JSON, as it will read back from the store: the hash must cover what is stored.
      const json = JSON.stringify(event);
      const stored = JSON.parse(json) as Record<string, unknown>;
      const writer = writerOf(event.tenant);
      const appended = new Promise<AuditLinkDocument>((resolve, reject) => {
        writer.queue.push({ event: stored, bytes: json.length, resolve, reject });
      });
      if (!writer.active) start(event.tenant, writer);
      return appended;
    },
    async drain() {
      for (;;) {
        // Hints waiting on their timer are written now.
        for (const [tenant, writer] of writers) {
          if (!writer.hintTimer) continue;
          clearTimeout(writer.hintTimer);
          writer.hintTimer = undefined;
          hint(tenant, writer, writer.lastSeq);
        }
        const busy = [...writers.values()].filter((writer) => writer.active || writer.hinting);
        if (busy.length === 0) return;
        await Promise.all(busy.flatMap((writer) => [writer.running, writer.hinting]));
      }
    },
  };
}

/**
 * The chain as an audit sink. An append that fails (MongoDB down) is logged at error level
 * with the event's type and tenant, and the request that caused it goes on: the audit trail
 * fails open, so sign-in pages keep working through a store outage. The log sink composed
 * beside it still records the event.
 * A request waits for its link at most `maxWaitMs` (the store timeout): while MongoDB hangs,
 * appends queued behind a failing link would otherwise add their timeouts up. Past the bound
 * the append goes on in the background (and is logged if it fails).
 */
export function createAuditChainSink(chain: AuditChain, log: Logger, options: { maxWaitMs?: number } = {}): AuditSink {
  const { maxWaitMs } = options;
  return {
    async record(event) {
      const appended = chain.append(event).then(
        () => true,
        (err: unknown) => {
          log.error({ err, auditType: event.type, tenant: event.tenant }, 'audit chain append failed: the event is in the log only');
          return true;
        },
      );
      if (maxWaitMs === undefined) {
        await appended;
        return;
      }
      if (!(await within(appended, maxWaitMs, false))) log.warn({ auditType: event.type, tenant: event.tenant, maxWaitMs }, 'audit chain append still pending: the request goes on, the append continues');
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

/** `count`: events in the links verified (before the problem, if any); `links`: those links. */
export type AuditVerification =
  | { ok: true; count: number; links: number; head: string }
  | { ok: false; seq: number; problem: AuditProblem; detail: string; count: number; links: number };

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
  let count = 0;
  for (let seq = 1; ; seq++) {
    const links = seq - 1;
    const doc = await store.get(tenant, seq);
    if (!doc) {
      const later = await store.firstAfter(tenant, seq);
      if (later) return { ok: false, seq, problem: 'missing', detail: `seq ${seq} is missing but seq ${later.seq} exists`, count, links };
      const hint = await store.headHint(tenant);
      if (hint > links) return { ok: false, seq, problem: 'truncated', detail: `the chain ends at seq ${links} but the head hint says ${hint}`, count, links };
      if (!anchored) return { ok: false, seq, problem: 'truncated', detail: `the chain ends at seq ${links} without reaching the anchored head ${anchor ?? ''}`, count, links };
      return { ok: true, count, links, head: prev };
    }
    if (doc.tenant !== tenant || doc.seq !== seq) {
      return { ok: false, seq, problem: 'misplaced', detail: `document ${doc._id} holds tenant ${String(doc.tenant)} seq ${String(doc.seq)}`, count, links };
    }
    if (doc.prevHash !== prev) {
      return { ok: false, seq, problem: 'broken_link', detail: `prevHash of seq ${seq} is not the hash of seq ${seq - 1}`, count, links };
    }
    // A link holds at least one event; an emptied or removed list is an edit like any other.
    if (!Array.isArray(doc.events) || doc.events.length === 0 || linkHash(prev, { tenant, seq, at: doc.at, events: doc.events }) !== doc.hash) {
      return { ok: false, seq, problem: 'edited', detail: `seq ${seq} does not match its hash`, count, links };
    }
    count += doc.events.length;
    prev = doc.hash;
    if (prev === anchor) anchored = true;
  }
}

/** `verifyAuditEvents` on a MongoDB database's `audit_events`. */
export function verifyAuditChain(db: Db, tenant: string, options: { anchor?: string } = {}): Promise<AuditVerification> {
  return verifyAuditEvents(createMongoAuditEventStore(db), tenant, options);
}
