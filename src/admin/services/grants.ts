import { z } from 'zod';
import { InvalidRequestError } from '../../errors/errors.ts';
import type { CastellanCore } from '../../server.ts';
import { DEFAULT_LIST_LIMIT, type ModelName, type Payload } from '../../storage/model-store.ts';
import { revokeClientEverywhere, revokeGrantEverywhere } from '../../storage/oidc-adapter.ts';
import type { AdminActor } from './admin-actor.ts';
import { parseAdminInput, recordAdminEvent, requireTenantRecord } from './admin-events.ts';
import { everyPage, pageOf, pageQuerySchema, type Page, type PageQuery } from './paging.ts';

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
  /** A page (after, limit) of the grants of one user or client (userId or clientId). */
  list(tenant: string, query: unknown): Promise<Page<GrantView>>;
  /** Revokes the grants (and every token of them); by client also its client-credentials tokens. How many grants. */
  revoke(tenant: string, selector: unknown, actor: AdminActor): Promise<{ revoked: number }>;
}

export function createGrantAdmin(core: GrantAdminCore): GrantAdmin {
  const { storage, audit } = core;

  async function findPage(tenant: string, selector: GrantSelector, page: PageQuery): Promise<GrantView[]> {
    const query = 'userId' in selector ? { accountId: selector.userId } : { clientId: selector.clientId };
    const records = await storage.records(tenant).list('Grant', { ...query, ...(page.after === undefined ? {} : { after: page.after }), limit: page.limit });
    return records.map((r) => toGrantView(r.id, r.payload));
  }

  function selectorOf(input: unknown): GrantSelector {
    if (typeof input !== 'object' || input === null) throw new InvalidRequestError('give exactly one of userId and clientId');
    return parseAdminInput(grantSelectorSchema, input);
  }

  return {
    async list(tenant, input) {
      const { after, limit, ...selector } = (typeof input === 'object' && input !== null ? input : {}) as Record<string, unknown>;
      const page = parseAdminInput(pageQuerySchema, { after, limit });
      const chosen = selectorOf(selector);
      await requireTenantRecord(storage.tenants, tenant);
      return pageOf(await findPage(tenant, chosen, page), page.limit, (grant) => grant.id);
    },
    async revoke(tenant, input, actor) {
      const selector = selectorOf(input);
      await requireTenantRecord(storage.tenants, tenant);
      // All of them, page after page: a user may hold more grants than one listing returns.
      const grants = await everyPage((after) => findPage(tenant, selector, { after, limit: DEFAULT_LIST_LIMIT }), (grant) => grant.id);
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
