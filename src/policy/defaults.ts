import type { PolicyHooks, ResourceAccessDecision, ResourceAccessRequest } from './hooks.ts';

/**
 * A client may ask for any of a resource's scopes, if the resource admits it: a resource
 * with `allowedClients` admits only those.
 */
async function resourceAccess(request: ResourceAccessRequest): Promise<ResourceAccessDecision> {
  const { allowedClients } = request.resource;
  if (allowedClients && !allowedClients.includes(request.clientId)) {
    return { allow: false, reason: `client ${request.clientId} may not get tokens for ${request.resource.uri}` };
  }
  return { allow: true, scopes: request.resource.scopes };
}

/**
 * Whether a tenant accepts self-registration at all, and how, is its `registration.mode`
 * setting; this hook is for decisions beyond that (a software_id denylist, say).
 */
export const defaultPolicyHooks: PolicyHooks = {
  resourceAccess,
  async acceptRegistration() {
    return { accept: true };
  },
  async consent() {
    return 'remember';
  },
  async tokenExchange() {
    return { allow: true };
  },
};
