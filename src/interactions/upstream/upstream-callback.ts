import type { Context } from 'koa';
import { NotFoundError } from '../../errors/errors.ts';
import type { TenantRuntime } from '../../tenants/tenant-registry.ts';
import type { InteractionDeps } from '../interaction-step.ts';

/** `/t/<tenant>/upstream/callback`: where upstream OpenID Providers send the user back. */
export async function handleUpstreamCallback(_ctx: Context, _runtime: TenantRuntime, _deps: InteractionDeps): Promise<void> {
  throw new NotFoundError('this tenant has no upstream identity provider');
}
