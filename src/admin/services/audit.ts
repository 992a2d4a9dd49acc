import { z } from 'zod';
import { NotFoundError } from '../../errors/errors.ts';
import type { CastellanCore } from '../../server.ts';
import { parseAdminInput, requireTenantRecord } from './admin-events.ts';

export interface AuditEventView {
  /** The seq of the chain link holding the event, and the event's position in it (from 0). */
  seq: number;
  index: number;
  /** When its link was written. */
  at: string;
  /** Its link's hash. */
  hash: string;
  event: Record<string, unknown>;
}

export interface AuditPage {
  events: AuditEventView[];
  /** Pass as `after` for the next page (`<seq>:<index>` of this page's last event); absent on the last page. */
  next?: string;
}

const isoTime = z.iso.datetime({ offset: true }).transform((value) => new Date(value).toISOString());

/** Query string form: every value a string (`type` may be a comma-separated list). */
export const auditQuerySchema = z.strictObject({
  type: z.string().regex(/^[a-z0-9_]+(?:,[a-z0-9_]+)*$/, 'type: event types, comma-separated').max(1000).optional(),
  from: isoTime.optional(),
  to: isoTime.optional(),
  /** `<seq>:<index>` (a page's `next`), or `<seq>` alone: after that whole link. */
  after: z.string().regex(/^\d{1,15}(?::\d{1,6})?$/, 'after: the next of the previous page (<seq>:<index>)').optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

export type AuditAdminCore = Pick<CastellanCore, 'storage' | 'auditEvents'>;

export interface AuditAdmin {
  /** A tenant's events in chain order, filtered by type and time, a page at a time. */
  query(tenant: string, query: unknown): Promise<AuditPage>;
}

function parseCursor(after: string): { seq: number; index: number } {
  const [seq = '0', index] = after.split(':');
  // A bare seq: past every event of that link.
  return { seq: Number(seq), index: index === undefined ? Number.MAX_SAFE_INTEGER : Number(index) };
}

export function createAuditAdmin(core: AuditAdminCore): AuditAdmin {
  return {
    async query(tenant, input) {
      await requireTenantRecord(core.storage.tenants, tenant);
      const { type, from, to, after, limit } = parseAdminInput(auditQuerySchema, input);
      // Only the MongoDB storage keeps events; the in-memory default logs them.
      if (!core.auditEvents) throw new NotFoundError('audit events are kept only with MongoDB storage; this server writes them to its log');
      const records = await core.auditEvents.query(tenant, {
        ...(type === undefined ? {} : { types: type.split(',') }),
        ...(from === undefined ? {} : { from }),
        ...(to === undefined ? {} : { to }),
        ...(after === undefined ? {} : { after: parseCursor(after) }),
        limit,
      });
      const events = records.map(({ seq, index, at, hash, event }) => ({ seq, index, at, hash, event }));
      const last = events.at(-1);
      return { events, ...(events.length === limit && last ? { next: `${last.seq}:${last.index}` } : {}) };
    },
  };
}
