import type { Logger } from 'pino';
import type { AdminActor } from '../admin/services/admin-actor.ts';
import type { AuditSink } from '../observability/audit.ts';
import { signedTokenRetentionSeconds, tenantSettingsSchema } from '../tenants/tenant-settings.ts';
import { NoNextKeyError } from './errors.ts';
import { keyRotatedEvent } from './key-events.ts';
import type { Keyring } from './keyring.ts';
import type { SigningAlg } from './signing-key-store.ts';

/** The actor of every scheduled rotation's audit event. */
export const SCHEDULE_ACTOR: AdminActor = { via: 'schedule', subject: 'key-rotation' };

export interface RotationScheduleDeps {
  keyring: Keyring;
  /** Every tenant with its raw settings (the tenant store's list()). */
  listTenants: () => Promise<ReadonlyArray<{ id: string; settings: Record<string, unknown> }>>;
  /** This node's providers: invalidated after a change so they rebuild with the new keys. */
  tenants: { invalidate(tenantId: string): void };
  audit: AuditSink;
  log: Logger;
  /** The keyring's clock (the same one, so ages and activation times agree). */
  now?: () => Date;
}

/** What one pass did for one tenant. */
export interface TenantRotationReport {
  tenant: string;
  /** Next keys made (published, not signing yet), by alg. */
  prepared: Array<{ alg: SigningAlg; kid: string }>;
  /** Rotations this node won. */
  rotated: Array<{ alg: SigningAlg; kid: string; previousKid: string; generation: number }>;
  /** Retired keys past their retention (and orphaned election keys), deleted. */
  removed: string[];
}

export interface RotationSchedule {
  /** One pass over every tenant; a failing tenant is logged and the others go on. */
  runOnce(): Promise<TenantRotationReport[]>;
  /** Stops the timer and waits for a pass in flight. */
  stop(): Promise<void>;
}

const DAY_MS = 86_400_000;

/**
 * Scheduled signing-key rotation, safe on any number of nodes at once. For each tenant and
 * signing alg, once the active key has signed for rotationDays minus prepareAheadSeconds a
 * next key is prepared (published in the JWKS, not signing); once it has signed rotationDays
 * and the next key has been published for prepareAheadSeconds, the next key is activated at
 * the generation after the one this pass saw. The activation is an insert with a unique
 * _id, so of several nodes exactly one wins and a node that saw a stale state loses instead
 * of rotating twice. Two nodes may both prepare a next key in the same pass: the spare one
 * stays published and becomes the key of the following rotation. Retired keys are deleted
 * once their retention is over.
 */
export function createRotationSchedule(deps: RotationScheduleDeps): RotationSchedule {
  const { keyring, audit, log } = deps;
  const now = deps.now ?? (() => new Date());

  async function runTenant(tenant: string, rawSettings: Record<string, unknown>): Promise<TenantRotationReport | undefined> {
    const parsed = tenantSettingsSchema.safeParse(rawSettings);
    // An invalid tenant fails its own requests (and says why there); nothing to rotate here.
    if (!parsed.success) return undefined;
    const settings = parsed.data;
    const retentionSeconds = signedTokenRetentionSeconds(settings);
    const report: TenantRotationReport = { tenant, prepared: [], rotated: [], removed: [] };
    if (settings.keys.scheduledRotation) {
      const summaries = await keyring.describeKeys(tenant, { retentionSeconds });
      const periodMs = settings.keys.rotationDays * DAY_MS;
      const leadMs = settings.keys.prepareAheadSeconds * 1000;
      for (const alg of settings.signingAlgorithms) {
        // No active key yet: the tenant has not been used; its first load elects one.
        const active = summaries.find((s) => s.alg === alg && s.state === 'active');
        if (active?.activatedAt === undefined || active.generation === undefined) continue;
        const at = now().getTime();
        const age = at - active.activatedAt.getTime();
        if (age < periodMs - leadMs) continue;
        const next = summaries.filter((s) => s.alg === alg && s.state === 'next').at(0);
        if (next === undefined) {
          const kid = await keyring.prepareNext(tenant, alg);
          report.prepared.push({ alg, kid });
          // Activated on a later pass, once it has been published for the lead time.
          continue;
        }
        if (age < periodMs || at - next.createdAt.getTime() < leadMs) continue;
        try {
          const result = await keyring.activateNext(tenant, alg, { generation: active.generation + 1 });
          if (!result.won) continue;
          report.rotated.push({ alg, kid: result.kid, previousKid: active.kid, generation: result.generation });
          await audit.record(keyRotatedEvent({
            tenant, alg, kid: result.kid, previousKid: active.kid, generation: result.generation, actor: SCHEDULE_ACTOR, reason: 'schedule',
          }));
        } catch (err) {
          // The next key was withdrawn (retired) meanwhile: the next pass prepares another.
          if (!(err instanceof NoNextKeyError)) throw err;
        }
      }
    }
    report.removed = await keyring.removeExpiredKeys(tenant, { retentionSeconds });
    if (report.prepared.length + report.rotated.length + report.removed.length > 0) {
      deps.tenants.invalidate(tenant);
      log.info({ tenant, prepared: report.prepared, rotated: report.rotated, removed: report.removed }, 'scheduled key rotation');
    }
    return report;
  }

  let running: Promise<TenantRotationReport[]> | undefined;

  async function pass(): Promise<TenantRotationReport[]> {
    const reports: TenantRotationReport[] = [];
    for (const tenant of await deps.listTenants()) {
      try {
        const report = await runTenant(tenant.id, tenant.settings);
        if (report) reports.push(report);
      } catch (err) {
        log.warn({ err, tenant: tenant.id }, 'scheduled key rotation failed for this tenant; retried on the next pass');
      }
    }
    return reports;
  }

  return {
    runOnce() {
      // One pass at a time on this node; a caller during a pass gets that pass.
      running ??= pass().finally(() => { running = undefined; });
      return running;
    },
    async stop() {
      await running?.catch(() => undefined);
    },
  };
}

export interface StartRotationScheduleOptions extends RotationScheduleDeps {
  /** Time between passes; default one hour. */
  intervalMs?: number;
  /** Delay of the first pass after start-up; default one minute. */
  firstPassMs?: number;
}

/** Runs the schedule on a timer (which never keeps the process alive) until stop(). */
export function startRotationSchedule(options: StartRotationScheduleOptions): RotationSchedule {
  const schedule = createRotationSchedule(options);
  const { intervalMs = 3_600_000, firstPassMs = 60_000 } = options;
  let stopped = false;
  const tick = (): void => {
    if (stopped) return;
    schedule.runOnce().catch((err: unknown) => options.log.warn({ err }, 'scheduled key rotation pass failed'));
  };
  const first = setTimeout(tick, firstPassMs);
  const every = setInterval(tick, intervalMs);
  first.unref();
  every.unref();
  return {
    runOnce: () => schedule.runOnce(),
    async stop() {
      stopped = true;
      clearTimeout(first);
      clearInterval(every);
      await schedule.stop();
    },
  };
}
