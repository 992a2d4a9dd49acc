import { removeClientEverywhere, type ModelStores } from '../../storage/oidc-adapter.ts';
import type { RegistrationAbuseStore } from './abuse-store.ts';

const DAY_MS = 86_400_000;
/** Clients examined per store round trip. */
const BATCH = 200;

/**
 * Deletes a self-registered client with everything issued to it, then forgets it (freeing
 * its place under the tenant's maximum). In that order: a crash in between leaves a member
 * without a client, which the next sweep forgets; never a client nobody counts.
 */
export async function removeSelfRegisteredClient(
  stores: ModelStores,
  abuse: RegistrationAbuseStore,
  tenant: string,
  clientId: string,
): Promise<void> {
  await removeClientEverywhere(stores, clientId);
  await abuse.forgetClient(tenant, clientId);
}

export interface UnusedClientSweepDeps {
  abuse: RegistrationAbuseStore;
  modelStores(tenant: string): ModelStores;
  /** The tenant's `registration.limits.unusedClientDays`, or undefined for a tenant that is gone. */
  unusedClientDays(tenant: string): Promise<number | undefined>;
  now?: () => number;
}

/**
 * Deletes self-registered clients never used, or unused, for their tenant's
 * `unusedClientDays` (and revokes what they were issued). Only clients the registration
 * gate admitted are candidates: operator and seeded clients are never in that list.
 * Safe to run on several nodes at once. Returns how many clients it deleted.
 */
export async function sweepUnusedClients(deps: UnusedClientSweepDeps): Promise<number> {
  const now = deps.now ?? Date.now;
  let removed = 0;
  for (const tenant of await deps.abuse.tenants()) {
    const days = await deps.unusedClientDays(tenant);
    if (days === undefined) continue;
    const before = now() - days * DAY_MS;
    const stores = deps.modelStores(tenant);
    let full = true;
    while (full) {
      const candidates = await deps.abuse.unusedClients(tenant, before, BATCH);
      let removedNow = 0;
      for (const clientId of candidates) {
        // Used since it was listed: keep it (it is not listed again).
        const lastUse = await deps.abuse.lastUse(tenant, clientId);
        if (lastUse !== undefined && lastUse >= before) continue;
        await removeSelfRegisteredClient(stores, deps.abuse, tenant, clientId);
        removedNow += 1;
      }
      removed += removedNow;
      full = candidates.length === BATCH && removedNow > 0;
    }
  }
  return removed;
}

export interface UnusedClientSweeper {
  /** Stops the timer and waits for a sweep in flight. */
  stop(): Promise<void>;
}

/** Runs sweepUnusedClients every `intervalMs` (default one hour) on an unref'd timer. */
export function startUnusedClientSweeper(
  deps: UnusedClientSweepDeps & { intervalMs?: number; onError: (error: unknown) => void },
): UnusedClientSweeper {
  let sweeping: Promise<unknown> | undefined;
  const timer = setInterval(() => {
    sweeping ??= sweepUnusedClients(deps)
      .catch(deps.onError)
      .finally(() => {
        sweeping = undefined;
      });
  }, deps.intervalMs ?? 3_600_000);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await sweeping;
    },
  };
}
