import type { PolicyHooks, ResourceAccessDecision, ResourceAccessRequest } from './hooks.ts';

/** Any client of the tenant may ask for any of a registered resource's scopes. */
async function resourceAccess(request: ResourceAccessRequest): Promise<ResourceAccessDecision> {
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
};
