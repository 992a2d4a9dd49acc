import type { PolicyHooks, ResourceAccessDecision, ResourceAccessRequest } from './hooks.ts';

/** Any client of the tenant may ask for any of a registered resource's scopes. */
async function resourceAccess(request: ResourceAccessRequest): Promise<ResourceAccessDecision> {
  return { allow: true, scopes: request.resource.scopes };
}

/** Self-registration stays closed until a tenant opts in (the registration issue adds modes). */
export const defaultPolicyHooks: PolicyHooks = {
  resourceAccess,
  async acceptRegistration() {
    return { accept: false, reason: 'this tenant does not accept self-registered clients' };
  },
};
