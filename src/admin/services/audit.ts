import { z } from 'zod';
import { NotFoundError } from '../../errors/errors.ts';
import type { CastellanCore } from '../../server.ts';
import { parseAdminInput, requireTenantRecord } from './admin-events.ts';

export interface AuditEventView {
  seq: number;
  at: string;
  hash: string;
  event: Record<string, unknown>;
}

export interface AuditPage {
  events: AuditEventView[];
  /** Pass as `after` for the next page; absent on the last page. */
  next?: number;
}

const isoTime = z.iso.datetime({ offset: true }).transform((value) => new Date(value).toISOString());

/** Query string form: every value a string (`type` may be a comma-separated list). */
export const auditQuerySchema = z.strictObject({
  type: z.string().regex(/^[a-z0-9_]+(?:,[a-z0-9_]+)*$/, 'type: event types, comma-separated').max(1000).optional(),
  from: isoTime.optional(),
  to: isoTime.optional(),
  after: z.coerce.number().int().min(0).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

export type AuditAdminCore = Pick<CastellanCore, 'storage' | 'auditEvents'>;

export interface AuditAdmin {
  /** A tenant's events in chain order, filtered by type and time, a page at a time. */
  query(tenant: string, query: unknown): Promise<AuditPage>;
}

export function createAuditAdmin(core: AuditAdminCore): AuditAdmin {
  return {
    async query(tenant, input) {
      await requireTenantRecord(core.storage.tenants, tenant);
      const { type, from, to, after, limit } = parseAdminInput(auditQuerySchema, input);
      // Only the MongoDB storage keeps events; the in-memory default logs them.
      if (!core.auditEvents) throw new NotFoundError('audit events are kept only with MongoDB storage; this server writes them to its log');
      const docs = await core.auditEvents.query(tenant, {
        ...(type === undefined ? {} : { types: type.split(',') }),
        ...(from === undefined ? {} : { from }),
        ...(to === undefined ? {} : { to }),
        ...(after === undefined ? {} : { afterSeq: after }),
        limit,
      });
      const events = docs.map((doc) => ({ seq: doc.seq, at: doc.at, hash: doc.hash, event: doc.event }));
      const last = events.at(-1);
      return { events, ...(events.length === limit && last ? { next: last.seq } : {}) };
    },
  };
}
