import { z } from 'zod';
import type { CastellanCore } from '../../server.ts';
import { tenantSettingsSchema } from '../../tenants/tenant-settings.ts';
import type { AdminActor } from './admin-actor.ts';
import { parseAdminInput, recordAdminEvent, requireTenantRecord } from './admin-events.ts';
import { checkTenantSettings } from './tenants.ts';

/**
 * The tenant settings that are policy decisions (ARCHITECTURE.md "Policy hooks"): who may
 * register, who may exchange tokens for whom, device-flow limits, CIMD hosts, consent, MFA.
 * Each is a section of the one tenant settings schema; nothing here is a second schema.
 */
export const POLICY_SECTIONS = ['registration', 'tokenExchange', 'deviceFlow', 'clientIdMetadataDocuments', 'consent', 'mfa'] as const;
export type PolicySection = (typeof POLICY_SECTIONS)[number];

/** Sections to replace; each is checked as part of the whole settings before it is stored. */
export const policyUpdateSchema = z.strictObject(
  Object.fromEntries(POLICY_SECTIONS.map((section) => [section, z.record(z.string(), z.unknown()).optional()])) as Record<PolicySection, z.ZodOptional<z.ZodRecord<z.ZodString, z.ZodUnknown>>>,
).refine((changes) => Object.keys(changes).length > 0, `nothing to change: give one or more of ${POLICY_SECTIONS.join(', ')}`);

export type PolicyView = Record<PolicySection, unknown>;

export type PolicyAdminCore = Pick<CastellanCore, 'storage' | 'tenants' | 'audit'>;

export interface PolicyAdmin {
  /** The effective policy settings (defaults filled in). */
  get(tenant: string): Promise<PolicyView>;
  /** Replaces the given sections of the stored settings; the rest of the settings stay. */
  update(tenant: string, changes: unknown, actor: AdminActor): Promise<PolicyView>;
}

function effective(settings: Record<string, unknown>): PolicyView {
  // Stored settings were checked when written; a legacy invalid value shows as its defaults.
  const parsed = tenantSettingsSchema.safeParse(settings);
  const source: Record<string, unknown> = parsed.success ? parsed.data : tenantSettingsSchema.parse({});
  return Object.fromEntries(POLICY_SECTIONS.map((section) => [section, source[section]])) as PolicyView;
}

export function createPolicyAdmin(core: PolicyAdminCore): PolicyAdmin {
  const { storage, tenants, audit } = core;
  return {
    async get(tenant) {
      return effective((await requireTenantRecord(storage.tenants, tenant)).settings);
    },
    async update(tenant, input, actor) {
      const record = await requireTenantRecord(storage.tenants, tenant);
      const changes = parseAdminInput(policyUpdateSchema, input);
      const settings = { ...record.settings, ...changes };
      checkTenantSettings(settings);
      await storage.tenants.update(tenant, { settings });
      tenants.invalidate(tenant);
      await recordAdminEvent(audit, 'admin_policy_updated', tenant, actor, { changed: Object.keys(changes).sort() });
      return effective(settings);
    },
  };
}
