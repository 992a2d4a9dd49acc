import { errors, type ResourceServer } from 'oidc-provider';
import type { PolicyHooks } from '../policy/hooks.ts';
import type { TenantSettings } from './tenant-settings.ts';

export interface ResourceLookup {
  tenantId: string;
  settings: TenantSettings;
  policy: PolicyHooks;
}

/**
 * What oidc-provider needs to issue a token for one resource (RFC 8707), or invalid_target:
 * unknown resources are never issued for, and the policy hook may refuse a client or narrow
 * the scopes. Token format (RFC 9068 JWT or opaque) and lifetime come from the resource.
 */
export async function resourceServerFor(lookup: ResourceLookup, clientId: string, uri: string): Promise<ResourceServer> {
  const resource = lookup.settings.resources.find((r) => r.uri === uri);
  if (!resource) throw new errors.InvalidTarget(`unknown resource: ${uri}`);
  const decision = await lookup.policy.resourceAccess({ tenant: lookup.tenantId, clientId, resource });
  if (!decision.allow) throw new errors.InvalidTarget(decision.reason);
  const accessTokenTTL = resource.accessTokenTtl ?? lookup.settings.ttl.accessToken;
  const scope = decision.scopes.join(' ');
  return resource.accessTokenFormat === 'jwt'
    ? { scope, audience: resource.uri, accessTokenTTL, accessTokenFormat: 'jwt', jwt: { sign: { alg: lookup.settings.accessTokenSigningAlgorithm } } }
    : { scope, audience: resource.uri, accessTokenTTL, accessTokenFormat: 'opaque' };
}
