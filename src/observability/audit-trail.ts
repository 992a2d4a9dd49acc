import type { Logger } from 'pino';
import { composeAuditSinks, createLogAuditSink, type AuditSink } from './audit.ts';
import { createAuditChain, createAuditChainSink } from './audit-chain.ts';
import type { AuditEventStore } from './audit-events.mongo.ts';
import { createJournaledAuditSink, startAuditJournalMover, type AuditJournal } from './audit-journal.ts';
import type { CastellanMetrics } from './metrics.ts';

export interface AuditTrail {
  /** Where every audit event is recorded. */
  sink: AuditSink;
  /** Moves what this node can from the journal into the chain and waits for the appends in flight. */
  flush(): Promise<void>;
  /** Stops the mover (after moving what it can) and waits for the appends in flight. */
  close(): Promise<void>;
}

export interface AuditTrailInput {
  /** The hash chain's store (MongoDB), if there is one. */
  events: AuditEventStore | undefined;
  /** The journal (Redis), if there is one and it is switched on (CASTELLAN_AUDIT_JOURNAL). */
  journal: AuditJournal | undefined;
  /** Where events go besides the chain (default: the log). */
  other: AuditSink | undefined;
  storeTimeoutMs: number;
  metrics: CastellanMetrics | undefined;
  log: Logger;
}

/**
 * Every event goes to the log (or the sink given) and, with MongoDB, to its tenant's hash
 * chain (audit-chain.ts); with Redis as well, the token endpoints' events reach the chain
 * through the journal (audit-journal.ts), moved by this node's mover.
 */
export function createAuditTrail(input: AuditTrailInput): AuditTrail {
  const { events, storeTimeoutMs, metrics, log } = input;
  const other = input.other ?? createLogAuditSink(log);
  if (!events) return { sink: other, flush: async () => {}, close: async () => {} };
  const chain = createAuditChain(events);
  const chainSink = createAuditChainSink(chain, log, { maxWaitMs: storeTimeoutMs });
  const { journal } = input;
  if (!journal) {
    return { sink: composeAuditSinks(chainSink, other), flush: () => chain.drain(), close: () => chain.drain() };
  }
  const mover = startAuditJournalMover(journal, chain, log);
  metrics?.watchAuditJournal(() => journal.backlog());
  const journaled = createJournaledAuditSink(journal, chainSink, log, { maxWaitMs: Math.min(1_000, storeTimeoutMs) });
  return {
    sink: composeAuditSinks(journaled, other),
    async flush() {
      while ((await mover.moveOnce()) > 0);
      await chain.drain();
    },
    async close() {
      await mover.stop();
      await chain.drain();
    },
  };
}
