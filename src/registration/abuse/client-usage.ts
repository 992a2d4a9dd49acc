import type Provider from 'oidc-provider';
import type { RegistrationAbuseStore } from './abuse-store.ts';

export interface ClientUseOptions {
  /** A client's use is written at most once per this period per process. Default 5 minutes. */
  minIntervalMs?: number;
  now?: () => number;
}

/** Clients remembered per process for the throttle before the memory is cleared. */
const MAX_REMEMBERED = 10_000;

/**
 * Records when self-registered clients are used, so the sweeper can delete the unused ones:
 * every successful token request (oidc-provider's grant.success: authorization code,
 * refresh, client credentials) moves the client's last use. One Redis ZADD XX, at most once
 * per client per `minIntervalMs` per process: the sweeper counts in days. A failure to
 * record is reported (`onError`), never turned into a failed token request.
 */
export function watchClientUse(
  provider: Provider,
  tenantId: string,
  abuse: RegistrationAbuseStore,
  onError: (error: unknown) => void,
  options: ClientUseOptions = {},
): void {
  const minIntervalMs = options.minIntervalMs ?? 5 * 60_000;
  const now = options.now ?? Date.now;
  const recorded = new Map<string, number>();
  provider.on('grant.success', (ctx) => {
    const clientId = ctx.oidc.client?.clientId;
    if (clientId === undefined) return;
    const at = now();
    const last = recorded.get(clientId);
    if (last !== undefined && at - last < minIntervalMs) return;
    if (recorded.size >= MAX_REMEMBERED) recorded.clear();
    recorded.set(clientId, at);
    // A failure is retried after the same interval, so an unreachable Redis is reported
    // once per client and interval, not on every token request.
    abuse.recordUse(tenantId, clientId, at).catch(onError);
  });
}
