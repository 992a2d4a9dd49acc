import { z } from 'zod';
import { InvalidRequestError } from '../../errors/errors.ts';
import type { CastellanCore } from '../../server.ts';
import type { ModelName, Payload } from '../../storage/model-store.ts';
import { revokeClientEverywhere, revokeGrantEverywhere } from '../../storage/oidc-adapter.ts';
import type { AdminActor } from './admin-actor.ts';
import { parseAdminInput, recordAdminEvent, requireTenantRecord } from './admin-events.ts';

/** One consent a user gave a client (oidc-provider's Grant), as operators see it. */
export interface GrantView {
  id: string;
  userId: string | undefined;
  clientId: string | undefined;
  /** Scopes granted for the user info / ID token, then per resource. */
  scope: string | undefined;
  resources: Record<string, string>;
  issuedAt: string | undefined;
  expiresAt: string | undefined;
}

/** Exactly one of userId, clientId: whose grants. */
export const grantSelectorSchema = z.union([
  z.strictObject({ userId: z.string().min(1).max(256) }),
  z.strictObject({ clientId: z.string().min(1).max(2048) }),
], { error: 'give exactly one of userId and clientId' });
export type GrantSelector = z.output<typeof grantSelectorSchema>;

/**
 * What a client holds besides its registration: revoking "by client" removes these, so the
 * client stays registered but must ask again (deleting it is the clients service's job).
 */
const ISSUED_TO_CLIENT: readonly ModelName[] = [
  'Grant', 'AccessToken', 'RefreshToken', 'AuthorizationCode', 'DeviceCode', 'ClientCredentials',
  'BackchannelAuthenticationRequest', 'PushedAuthorizationRequest', 'PreAuthorizedCode',
];

function epochToIso(value: unknown): string | undefined {
  return typeof value === 'number' ? new Date(value * 1000).toISOString() : undefined;
}

export function toGrantView(id: string, payload: Payload): GrantView {
  const openid = payload['openid'] as { scope?: unknown } | undefined;
  const resources: Record<string, string> = {};
  for (const [uri, scope] of Object.entries((payload['resources'] as Record<string, unknown> | undefined) ?? {})) {
    if (typeof scope === 'string') resources[uri] = scope;
  }
  return {
    id,
    userId: typeof payload['accountId'] === 'string' ? payload['accountId'] : undefined,
    clientId: typeof payload['clientId'] === 'string' ? payload['clientId'] : undefined,
    scope: typeof openid?.scope === 'string' ? openid.scope : undefined,
    resources,
    issuedAt: epochToIso(payload['iat']),
    expiresAt: epochToIso(payload['exp']),
  };
}

export type GrantAdminCore = Pick<CastellanCore, 'storage' | 'audit'>;

export interface GrantAdmin {
  list(tenant: string, selector: unknown): Promise<GrantView[]>;
  /** Revokes the grants (and every token of them); by client also its client-credentials tokens. How many grants. */
  revoke(tenant: string, selector: unknown, actor: AdminActor): Promise<{ revoked: number }>;
}

export function createGrantAdmin(core: GrantAdminCore): GrantAdmin {
  const { storage, audit } = core;

  async function find(tenant: string, selector: GrantSelector): Promise<GrantView[]> {
    await requireTenantRecord(storage.tenants, tenant);
    const query = 'userId' in selector ? { accountId: selector.userId } : { clientId: selector.clientId };
    return (await storage.records(tenant).list('Grant', query)).map((r) => toGrantView(r.id, r.payload));
  }

  function selectorOf(input: unknown): GrantSelector {
    if (typeof input !== 'object' || input === null) throw new InvalidRequestError('give exactly one of userId and clientId');
    return parseAdminInput(grantSelectorSchema, input);
  }

  return {
    async list(tenant, selector) {
      return find(tenant, selectorOf(selector));
    },
    async revoke(tenant, input, actor) {
      const selector = selectorOf(input);
      const grants = await find(tenant, selector);
      const stores = storage.modelStores(tenant);
      for (const grant of grants) {
        // Tokens of the grant first, the grant last: a crash in between leaves nothing usable.
        await revokeGrantEverywhere(stores, grant.id);
        await stores.durable.destroy('Grant', grant.id);
      }
      if ('clientId' in selector) await revokeClientEverywhere(stores, selector.clientId, ISSUED_TO_CLIENT);
      await recordAdminEvent(audit, 'admin_grants_revoked', tenant, actor, { ...selector, grants: grants.length });
      return { revoked: grants.length };
    },
  };
}
