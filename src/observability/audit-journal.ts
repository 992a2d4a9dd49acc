import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { AuditEvent, AuditSink } from './audit.ts';
import type { AuditChain } from './audit-chain.ts';
import { within } from '../shared/within.ts';

/**
 * The audit journal: a durable queue in front of the hash chain for the events of the token
 * endpoints. Every token answer waits for its event (so none is lost with the process); with
 * the chain alone that is a MongoDB insert on the path of every token, which the design keeps
 * off JWT issuance and introspection (STORES.md: "they need no MongoDB round trip"). With the
 * journal the request waits for one Redis append instead (durable as Redis is: AOF in
 * production), and a mover on every node carries journaled events into the chain in large
 * links, off the request path.
 *
 * Delivery into the chain is at least once: a node that dies after storing a link and before
 * acknowledging its entries leaves them to be moved again (by another node once they have
 * been idle `claimAfterMs`, or by itself). Every moved event carries its `journalId`, so such
 * a copy is recognisable as one.
 */

export interface JournalEntry {
  id: string;
  /** The event, or undefined for an entry that is not one (it is dropped with a log line). */
  event: AuditEvent | undefined;
}

export interface AuditJournal {
  /** Appends an event; resolves with its entry id once the journal holds it. */
  add(event: AuditEvent): Promise<string>;
  /**
   * Up to `count` entries for `consumer`: with `own`, those it took before and has not
   * acknowledged (an earlier move failed); otherwise entries nobody has taken yet.
   */
  take(consumer: string, count: number, own: boolean): Promise<JournalEntry[]>;
  /** Entries another consumer took and left unacknowledged for `idleMs` (it died): now `consumer`'s. */
  claimAbandoned(consumer: string, idleMs: number, count: number): Promise<JournalEntry[]>;
  /** Forgets entries whose events are in the chain. */
  acknowledge(ids: readonly string[]): Promise<void>;
  /** How many entries the journal holds (not yet in the chain). */
  backlog(): Promise<number>;
}

/** What a journal entry must hold to be an audit event (the rest of it is the event's detail). */
const journaledEvent = z.looseObject({
  type: z.string().min(1),
  tenant: z.string().min(1),
  outcome: z.enum(['success', 'failure']),
});

/** Parses an entry's stored JSON; undefined when it is not an audit event. */
export function parseJournaledEvent(json: string | undefined): AuditEvent | undefined {
  if (json === undefined) return undefined;
  try {
    const parsed = journaledEvent.safeParse(JSON.parse(json));
    return parsed.success ? (parsed.data as AuditEvent) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The events of the token and revocation endpoints, one or two per request, the volume of the
 * log: tokens issued and revoked, and the facts of a token exchange or ID-JAG request.
 */
const TOKEN_ENDPOINT_EVENTS: ReadonlySet<string> = new Set(['token_issued', 'token_revoked', 'token_exchange', 'id_jag_issue', 'id_jag_redeem']);

/** The events that go through the journal. */
export function isTokenEndpointEvent(event: AuditEvent): boolean {
  return TOKEN_ENDPOINT_EVENTS.has(event.type);
}

export interface JournaledAuditSinkOptions {
  /** Which events go through the journal; the others go straight to `direct`. */
  journaled?: (event: AuditEvent) => boolean;
  /** After the journal failed, events go straight to `direct` for this long (default 5 s). */
  bypassMs?: number;
  /**
   * How long a request waits for its journal append before the event goes to `direct`
   * (default 1 s): a stalled Redis must not hold token answers for a whole store timeout.
   */
  maxWaitMs?: number;
  now?: () => number;
}

const TIMED_OUT = Symbol('audit journal wait exceeded');

class JournalWaitExceeded extends Error {
  constructor(ms: number) {
    super(`the audit journal did not take the event within ${ms} ms`);
    this.name = 'JournalWaitExceeded';
  }
}

/**
 * An audit sink that records the chosen events in the journal and the others in `direct` (the
 * chain). When the journal fails or does not answer within `maxWaitMs`, the event goes to
 * `direct` instead, and so do the next ones for `bypassMs`: a stalled Redis costs the requests
 * of that moment at most `maxWaitMs`, not each request a store timeout. An append that was
 * only late may still land: that event is then in the chain twice (once with a journalId).
 */
export function createJournaledAuditSink(journal: AuditJournal, direct: AuditSink, log: Logger, options: JournaledAuditSinkOptions = {}): AuditSink {
  const journaled = options.journaled ?? isTokenEndpointEvent;
  const bypassMs = options.bypassMs ?? 5_000;
  const maxWaitMs = options.maxWaitMs ?? 1_000;
  const now = options.now ?? Date.now;
  let bypassUntil = 0;
  /** Undefined once the journal holds the event; otherwise why it does not (yet). */
  const failureToAdd = async (event: AuditEvent): Promise<unknown> => {
    const failure = await within(
      journal.add(event).then(() => undefined, (err: unknown) => err ?? new Error('audit journal append failed')),
      maxWaitMs,
      TIMED_OUT,
    );
    // Made only when needed: the answer of every token request passes here.
    return failure === TIMED_OUT ? new JournalWaitExceeded(maxWaitMs) : failure;
  };
  return {
    async record(event) {
      if (!journaled(event) || now() < bypassUntil) {
        await direct.record(event);
        return;
      }
      const err = await failureToAdd(event);
      if (err === undefined) return;
      bypassUntil = now() + bypassMs;
      log.warn({ err, auditType: event.type, tenant: event.tenant }, 'audit journal unreachable: events go straight to the chain for a while');
      await direct.record(event);
    },
  };
}

export interface AuditJournalMoverOptions {
  /** Entries moved per pass (default 1,000; the chain splits them into links of at most 500). */
  batch?: number;
  /** Pause when there is nothing to move (default 200 ms): how stale the chain may be. */
  idleMs?: number;
  /** Pause after a failed move (default 1 s). */
  retryMs?: number;
  /** Another node's entries are claimed after they have been idle this long (default 30 s). */
  claimAfterMs?: number;
  /** How often abandoned entries are looked for (default 10 s). */
  claimEveryMs?: number;
  /** This node's consumer name (default a random one: a restarted node is a new consumer). */
  consumer?: string;
}

export interface AuditJournalMover {
  /** One pass: moves what it can; resolves with the number of entries it acknowledged. */
  moveOnce(): Promise<number>;
  /** Stops the loop, then moves what is left to this node (new entries and its own). */
  stop(): Promise<void>;
}

/**
 * Carries journaled events into the chain. A pass takes this node's unacknowledged entries
 * first (an earlier append failed: MongoDB was down), then entries abandoned by a dead node,
 * then new ones; appends them (the chain's group commit puts them into few links) and
 * acknowledges exactly those whose link is stored. What fails stays in the journal and is
 * tried again, so an outage of MongoDB delays the chain and loses nothing.
 */
export function startAuditJournalMover(journal: AuditJournal, chain: AuditChain, log: Logger, options: AuditJournalMoverOptions = {}): AuditJournalMover {
  const batch = options.batch ?? 1_000;
  const idleMs = options.idleMs ?? 200;
  const retryMs = options.retryMs ?? 1_000;
  const claimAfterMs = options.claimAfterMs ?? 30_000;
  const claimEveryMs = options.claimEveryMs ?? 10_000;
  const consumer = options.consumer ?? `node-${randomUUID()}`;
  let ownPending = true;
  let lastClaim = 0;
  let running = true;
  let wake: (() => void) | undefined;
  let pass: Promise<number> = Promise.resolve(0);

  async function entriesToMove(): Promise<JournalEntry[]> {
    if (ownPending) {
      const own = await journal.take(consumer, batch, true);
      if (own.length > 0) return own;
      ownPending = false;
    }
    if (Date.now() - lastClaim >= claimEveryMs) {
      lastClaim = Date.now();
      const abandoned = await journal.claimAbandoned(consumer, claimAfterMs, batch);
      if (abandoned.length > 0) return abandoned;
    }
    return journal.take(consumer, batch, false);
  }

  async function move(): Promise<number> {
    const entries = await entriesToMove();
    if (entries.length === 0) return 0;
    const outcomes = await Promise.allSettled(entries.map(async ({ id, event }) => {
      if (event === undefined) {
        log.error({ journalId: id }, 'audit journal entry is not an event: dropped');
        return;
      }
      await chain.append({ ...event, journalId: id });
    }));
    const moved = entries.filter((_, i) => outcomes[i]?.status === 'fulfilled').map(({ id }) => id);
    if (moved.length > 0) await journal.acknowledge(moved);
    if (moved.length < entries.length) {
      ownPending = true;
      const failure = outcomes.find((outcome) => outcome.status === 'rejected');
      throw failure?.status === 'rejected' ? failure.reason : new Error('audit journal move failed');
    }
    return moved.length;
  }

  const moveOnce = (): Promise<number> => {
    // One pass at a time: the loop's and a caller's would take the same own entries twice.
    pass = pass.catch(() => 0).then(move);
    return pass;
  };

  const pause = (ms: number): Promise<void> => new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    wake = () => {
      clearTimeout(timer);
      resolve();
    };
  });

  const loop = (async () => {
    while (running) {
      let delay = 0;
      try {
        const moved = await moveOnce();
        if (moved < batch) delay = idleMs;
      } catch (err) {
        // Entries not moved stay this node's; they are taken first next time.
        ownPending = true;
        log.error({ err }, 'audit journal: moving events into the chain failed; trying again');
        delay = retryMs;
      }
      if (running && delay > 0) await pause(delay);
    }
  })();

  return {
    moveOnce,
    async stop() {
      running = false;
      wake?.();
      await loop;
      // What this node can still move before it goes (anything left is moved by another node or the next start).
      for (let i = 0; i < 100; i++) {
        const moved = await moveOnce().catch((err: unknown) => {
          log.warn({ err }, 'audit journal: events left for another node or the next start');
          return 0;
        });
        if (moved === 0) return;
      }
    },
  };
}
