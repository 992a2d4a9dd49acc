import { z } from 'zod';
import { InvalidRequestError, NotFoundError } from '../../errors/errors.ts';
import type { AuditEvent, AuditSink } from '../../observability/audit.ts';
import { isValidTenantId, type TenantRecord, type TenantStore } from '../../tenants/tenant-store.ts';
import type { AdminActor } from './admin-actor.ts';

/** The audit record of one administrative change: who, what, where; never a secret or a password. */
export function adminEvent(type: `admin_${string}`, tenant: string, actor: AdminActor, details: Record<string, unknown> = {}): AuditEvent {
  return {
    type,
    tenant,
    outcome: 'success',
    actor: { via: actor.via, subject: actor.subject, ...(actor.clientId === undefined ? {} : { clientId: actor.clientId }) },
    ...details,
  };
}

export async function recordAdminEvent(audit: AuditSink, ...args: Parameters<typeof adminEvent>): Promise<void> {
  await audit.record(adminEvent(...args));
}

/** Validates an operator's input at the edge; zod's issues become one 400 with every path named. */
export function parseAdminInput<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw new InvalidRequestError(z.prettifyError(parsed.error));
  return parsed.data;
}

/** The tenant's record, or 404 (disabled tenants included: operators still manage them). */
export async function requireTenantRecord(tenants: TenantStore, tenant: string): Promise<TenantRecord> {
  // An id that is not even a tenant id cannot exist (and must not reach a store key).
  const record = isValidTenantId(tenant) ? await tenants.get(tenant) : undefined;
  if (!record) throw new NotFoundError(`no tenant "${tenant.slice(0, 64)}"`);
  return record;
}
