import type { Logger } from 'pino';

/**
 * Security-relevant events, never carrying a token or a secret. The sink is an interface so
 * an append-only, hash-chained store (MongoDB) can replace the log-based default.
 */
export interface AuditEvent {
  type: string;
  tenant: string;
  outcome: 'success' | 'failure';
  /** OAuth error code for failures. */
  error?: string;
  [detail: string]: unknown;
}

export interface AuditSink {
  record(event: AuditEvent): Promise<void>;
}

/** Writes each event as one structured log line (`audit: true`), the default sink. */
export function createLogAuditSink(log: Logger): AuditSink {
  return {
    async record(event) {
      log.info({ audit: true, ...event, at: new Date().toISOString() }, `audit ${event.type}`);
    },
  };
}

/** Keeps events in memory: for tests and for looking at what a run recorded. */
export function createMemoryAuditSink(): AuditSink & { events: AuditEvent[] } {
  const events: AuditEvent[] = [];
  return {
    events,
    async record(event) {
      events.push(structuredClone(event));
    },
  };
}
