import { ConflictError } from '../../errors/errors.ts';
import type { CastellanCore } from '../../server.ts';
import type { TenantSettingsInput } from '../../tenants/tenant-settings.ts';
import type { AdminActor } from './admin-actor.ts';
import { createClientAdmin, type ClientWithSecret } from './clients.ts';
import { createTenantAdmin } from './tenants.ts';

/**
 * Castellan protecting itself: the admin API is a resource of the system tenant, and its
 * callers are that tenant's clients holding access tokens with these scopes.
 */
export const ADMIN_SCOPES = ['admin:read', 'admin:write'] as const;
export type AdminScope = (typeof ADMIN_SCOPES)[number];

export const ADMIN_API_PATH = '/admin/v1';

/** The admin API's resource URI (RFC 8707): its tokens' audience. */
export function adminResourceUri(baseUrl: string): string {
  return `${baseUrl}${ADMIN_API_PATH}`;
}

/** Admin tokens live 5 minutes: JWTs cannot be revoked, so their life is kept short. */
export const ADMIN_TOKEN_TTL_SECONDS = 300;

/** The system tenant's settings: no registration, one JWT resource, the admin scopes. */
export function systemTenantSettings(baseUrl: string): TenantSettingsInput {
  return {
    displayName: 'Castellan system',
    scopes: [...ADMIN_SCOPES],
    registration: { mode: 'closed' },
    resources: [{
      uri: adminResourceUri(baseUrl),
      name: 'Castellan admin API',
      scopes: [...ADMIN_SCOPES],
      accessTokenFormat: 'jwt',
      accessTokenTtl: ADMIN_TOKEN_TTL_SECONDS,
    }],
  };
}

export interface SystemTenantOptions {
  tenantId: string;
  baseUrl: string;
}

export type SystemTenantCore = Pick<CastellanCore, 'storage' | 'tenants' | 'audit'>;

/**
 * Creates the system tenant when missing (start-up with the admin API on, `castellan init`);
 * an existing one is left as the operator made it. true when it was created now.
 */
export async function ensureSystemTenant(core: SystemTenantCore, options: SystemTenantOptions, actor: AdminActor): Promise<boolean> {
  if (await core.storage.tenants.get(options.tenantId)) return false;
  try {
    await createTenantAdmin(core).create({ id: options.tenantId, displayName: 'Castellan system', settings: systemTenantSettings(options.baseUrl) }, actor);
    return true;
  } catch (err) {
    // Another node created it at the same moment.
    if (err instanceof ConflictError) return false;
    throw err;
  }
}

/**
 * A confidential client of the system tenant that gets admin tokens by client_credentials
 * (`resource` = the admin API's URI). The secret is returned once; only its digest is stored.
 */
export async function createAdminClient(
  core: SystemTenantCore,
  options: { tenantId: string; clientId?: string; clientName?: string; scopes?: readonly AdminScope[] },
  actor: AdminActor,
): Promise<ClientWithSecret> {
  return createClientAdmin(core).create(options.tenantId, {
    ...(options.clientId === undefined ? {} : { client_id: options.clientId }),
    client_name: options.clientName ?? 'Castellan admin',
    grant_types: ['client_credentials'],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: (options.scopes ?? ADMIN_SCOPES).join(' '),
  }, actor);
}
