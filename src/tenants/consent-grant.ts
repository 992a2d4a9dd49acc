import type { KoaContextWithOIDC } from 'oidc-provider';
import type { PolicyHooks } from '../policy/hooks.ts';

type Grant = InstanceType<KoaContextWithOIDC['oidc']['provider']['Grant']>;

/**
 * oidc-provider's loadExistingGrant, decided by the consent policy hook: the grant the user
 * just gave, else (remember) the one remembered in the session, else nothing so the user is
 * asked; `skip` builds the grant for what was requested without asking.
 */
export function consentGrantLoader(tenantId: string, policy: PolicyHooks) {
  return async (ctx: KoaContextWithOIDC): Promise<Grant | undefined> => {
    const { provider, client, account, session, result } = ctx.oidc;
    const given = result?.consent?.grantId;
    if (typeof given === 'string') return provider.Grant.find(given);
    if (!client || !account || !session) return undefined;

    const decision = await policy.consent({ tenant: tenantId, clientId: client.clientId, accountId: account.accountId });
    if (decision === 'every-time') return undefined;
    const rememberedId = session.grantIdFor(client.clientId);
    const remembered = rememberedId ? await provider.Grant.find(rememberedId) : undefined;
    if (decision === 'remember') return remembered;

    const grant = remembered ?? new provider.Grant({ accountId: account.accountId, clientId: client.clientId });
    const requested = ctx.oidc.requestParamScopes;
    grant.addOIDCScope([...ctx.oidc.requestParamOIDCScopes].join(' '));
    for (const [indicator, server] of Object.entries(ctx.oidc.resourceServers ?? {})) {
      const offered = new Set((server.scope ?? '').split(' '));
      grant.addResourceScope(indicator, [...requested].filter((s) => offered.has(s)).join(' '));
    }
    await grant.save();
    return grant;
  };
}
