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

/**
 * Writes each event as one structured log line (`audit: true`), the default sink. Events are
 * written at level info even where the logger is set quieter (the CLI runs at warn): only
 * `silent` silences them.
 */
export function createLogAuditSink(log: Logger): AuditSink {
  const out = log.level === 'silent' || log.isLevelEnabled('info') ? log : log.child({}, { level: 'info' });
  return {
    async record(event) {
      out.info({ audit: true, ...event, at: new Date().toISOString() }, `audit ${event.type}`);
    },
  };
}

/** Records every event in each sink (e.g. the MongoDB audit chain and the log), in parallel. */
export function composeAuditSinks(...sinks: AuditSink[]): AuditSink {
  return {
    async record(event) {
      await Promise.all(sinks.map((sink) => sink.record(event)));
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

/**
 * How a person signed in: `pwd` a password alone, `otp` password and TOTP code, `recovery`
 * password and recovery code, `fed` an upstream identity provider.
 */
export type SignInMethod = 'pwd' | 'otp' | 'recovery' | 'fed';

/** The method of a sign-in from the `amr` Castellan gave it (RFC 8176 values). */
export function signInMethodOf(amr: readonly unknown[] | undefined): SignInMethod | undefined {
  if (!amr) return undefined;
  if (amr.includes('fed')) return 'fed';
  if (amr.includes('otp')) return 'otp';
  if (amr.includes('mfa')) return 'recovery';
  return amr.includes('pwd') ? 'pwd' : undefined;
}

/** Where a person signs in: an OAuth authorization's login step, or the account security page. */
export type SignInPlace = 'authorization' | 'account_security';

export interface SignInFacts {
  tenant: string;
  method: SignInMethod;
  /** Only once the account is known (right password, or a federated identity): never the typed login name. */
  userId?: string | undefined;
  /** The client address as Koa sees it (behind a trusted proxy: X-Forwarded-For). */
  ip: string;
  place?: SignInPlace;
}

/**
 * A sign-in's event: `sign_in` (success, or failure with error `invalid_credentials`), or
 * `sign_in_locked` when the throttle refused to check at all. Passwords, codes and the login
 * name typed for an unknown account never appear.
 */
export function signInEvent(facts: SignInFacts, result: 'success' | 'invalid' | 'locked'): AuditEvent {
  const { tenant, method, userId, ip, place = 'authorization' } = facts;
  const event: AuditEvent = result === 'success'
    ? { type: 'sign_in', tenant, outcome: 'success', method, place, ip }
    : { type: result === 'locked' ? 'sign_in_locked' : 'sign_in', tenant, outcome: 'failure', error: result === 'locked' ? 'locked' : 'invalid_credentials', method, place, ip };
  if (userId !== undefined) event.userId = userId;
  return event;
}

/** A change to a user's second factor; `by` says who made it. */
export function totpEvent(
  tenant: string,
  userId: string,
  change: 'totp_enabled' | 'totp_disabled' | 'totp_recovery_codes_regenerated' | 'totp_reset',
  by: 'user' | 'operator',
  ip?: string,
): AuditEvent {
  return { type: change, tenant, outcome: 'success', userId, by, ...(ip === undefined ? {} : { ip }) };
}
