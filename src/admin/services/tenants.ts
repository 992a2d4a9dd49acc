import { z } from 'zod';
import { ConflictError, InvalidRequestError } from '../../errors/errors.ts';
import type { CastellanCore } from '../../server.ts';
import { tenantSettingsSchema } from '../../tenants/tenant-settings.ts';
import { newTenantSchema, tenantChangesSchema, type TenantRecord } from '../../tenants/tenant-store.ts';
import type { AdminActor } from './admin-actor.ts';
import { parseAdminInput, recordAdminEvent, requireTenantRecord } from './admin-events.ts';

/** A tenant as operators see it. Settings are the stored (raw) ones, defaults not filled in. */
export interface TenantView {
  id: string;
  displayName: string;
  disabled: boolean;
  settings: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

export const tenantCreateSchema = newTenantSchema.strict();
/** `disabled` changes only through disable/enable, so each has its own audit event. */
export const tenantUpdateSchema = tenantChangesSchema.omit({ disabled: true }).strict()
  .refine((c) => c.displayName !== undefined || c.settings !== undefined, 'nothing to change: give displayName and/or settings');

export type TenantAdminCore = Pick<CastellanCore, 'storage' | 'tenants' | 'audit'>;

export function toTenantView(record: TenantRecord): TenantView {
  return {
    id: record.id,
    displayName: record.displayName,
    disabled: record.disabled === true,
    settings: record.settings,
    createdAt: record.createdAt.toISOString(),
    updatedAt: record.updatedAt.toISOString(),
  };
}

/** Settings are checked whole before they are stored: a tenant never gets settings it cannot load with. */
export function checkTenantSettings(settings: Record<string, unknown>): void {
  const parsed = tenantSettingsSchema.safeParse(settings);
  if (!parsed.success) throw new InvalidRequestError(`invalid tenant settings: ${z.prettifyError(parsed.error)}`);
}

export interface TenantAdmin {
  list(): Promise<TenantView[]>;
  get(id: string): Promise<TenantView>;
  create(input: unknown, actor: AdminActor): Promise<TenantView>;
  update(id: string, changes: unknown, actor: AdminActor): Promise<TenantView>;
  /** The tenant then answers like an unknown one everywhere (its tokens fail introspection). */
  disable(id: string, actor: AdminActor): Promise<TenantView>;
  enable(id: string, actor: AdminActor): Promise<TenantView>;
}

/**
 * The tenant whose tokens open the admin API, for the API's own guard: through the API, it
 * can be neither disabled nor given settings without the admin resource (that would lock
 * every operator out; the CLI, which needs no token, still can).
 */
export interface AdminAccessGuard {
  readonly systemTenant: string;
  readonly adminResource: string;
  readonly adminScopes: readonly string[];
}

/** Whether these settings still let the system tenant issue admin tokens. */
function keepsAdminAccess(settings: Record<string, unknown>, guard: AdminAccessGuard): boolean {
  const parsed = tenantSettingsSchema.parse(settings);
  const resource = parsed.resources.find((r) => r.uri === guard.adminResource);
  return resource !== undefined && guard.adminScopes.every((scope) => resource.scopes.includes(scope) && parsed.scopes.includes(scope));
}

/** Tenants for the admin API and the CLI: validated input, an audit event per change. */
export function createTenantAdmin(core: TenantAdminCore, guard?: AdminAccessGuard): TenantAdmin {
  const { storage, tenants, audit } = core;

  async function view(id: string): Promise<TenantView> {
    return toTenantView(await requireTenantRecord(storage.tenants, id));
  }

  async function setDisabled(id: string, disabled: boolean, actor: AdminActor): Promise<TenantView> {
    const current = await requireTenantRecord(storage.tenants, id);
    if (disabled && guard?.systemTenant === id) {
      throw new ConflictError(`tenant "${id}" issues the admin API's tokens: disabling it here would lock the API out (use the CLI)`);
    }
    if (current.disabled === true !== disabled) {
      await storage.tenants.update(id, { disabled });
      // This node at once; the others when they next re-read the tenant (within 10 s).
      tenants.invalidate(id);
      await recordAdminEvent(audit, disabled ? 'admin_tenant_disabled' : 'admin_tenant_enabled', id, actor);
    }
    return view(id);
  }

  return {
    async list() {
      return (await storage.tenants.list()).map(toTenantView);
    },
    get: view,
    async create(input, actor) {
      const { id, displayName, settings = {} } = parseAdminInput(tenantCreateSchema, input);
      checkTenantSettings(settings);
      if (!(await storage.tenants.create({ id, displayName, settings }))) throw new ConflictError(`tenant "${id}" exists already`);
      // This node may remember the id as unknown from an earlier request.
      tenants.invalidate(id);
      await recordAdminEvent(audit, 'admin_tenant_created', id, actor, { settingsKeys: Object.keys(settings).sort() });
      // Elect its signing keys now, as start-up does for configured tenants.
      await tenants.get(id);
      return view(id);
    },
    async update(id, changes, actor) {
      await requireTenantRecord(storage.tenants, id);
      const parsed = parseAdminInput(tenantUpdateSchema, changes);
      if (parsed.settings !== undefined) {
        checkTenantSettings(parsed.settings);
        if (guard?.systemTenant === id && !keepsAdminAccess(parsed.settings, guard)) {
          throw new ConflictError(`tenant "${id}" issues the admin API's tokens: its settings must keep the resource ${guard.adminResource} with the scopes ${guard.adminScopes.join(' ')}`);
        }
      }
      await storage.tenants.update(id, parsed);
      tenants.invalidate(id);
      // Names of what changed, not values: settings may hold upstream client secrets.
      await recordAdminEvent(audit, 'admin_tenant_updated', id, actor, {
        changed: Object.keys(parsed).sort(),
        ...(parsed.settings === undefined ? {} : { settingsKeys: Object.keys(parsed.settings).sort() }),
      });
      return view(id);
    },
    disable: (id, actor) => setDisabled(id, true, actor),
    enable: (id, actor) => setDisabled(id, false, actor),
  };
}
