import { randomBytes } from 'node:crypto';

import { z } from 'zod';

/**
 * A tenant id appears in paths (`/t/:tenant`), host names and storage keys
 * (`<tenant>:...`), so it is a DNS-label-like slug: no ':' or '/' can ever appear in it.
 */
export const tenantIdSchema = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, {
  message: 'tenant id must be 1-63 of a-z, 0-9 and "-", starting with a letter or digit',
});

export function isValidTenantId(id: string): boolean {
  return tenantIdSchema.safeParse(id).success;
}

export interface TenantRecord {
  readonly id: string;
  readonly displayName: string;
  /** Raw settings; src/tenants/tenant-settings.ts validates them when read. */
  readonly settings: Record<string, unknown>;
  /**
   * Set by an operator: a disabled tenant answers like an unknown one on every endpoint, so
   * its tokens also stop passing introspection (src/tenants/tenant-registry.ts).
   */
  readonly disabled?: boolean;
  /** Changes on every update; random, never a counter (no $inc on FerretDB). */
  readonly revision: string;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface NewTenant {
  readonly id: string;
  readonly displayName: string;
  readonly settings?: Record<string, unknown>;
}

export interface TenantChanges {
  readonly displayName?: string;
  /** Replaces the whole settings object (last writer wins). */
  readonly settings?: Record<string, unknown>;
  readonly disabled?: boolean;
}

export const newTenantSchema = z.object({
  id: tenantIdSchema,
  displayName: z.string().trim().min(1).max(200),
  settings: z.record(z.string(), z.unknown()).optional(),
});

export const tenantChangesSchema = z.object({
  displayName: z.string().trim().min(1).max(200).optional(),
  settings: z.record(z.string(), z.unknown()).optional(),
  disabled: z.boolean().optional(),
});

/** A create() input that fails validation; `issues` are zod's. */
export class InvalidTenantError extends Error {
  readonly code = 'INVALID_TENANT';
  override readonly name = 'InvalidTenantError';
  readonly issues: readonly z.core.$ZodIssue[];
  constructor(message: string, issues: readonly z.core.$ZodIssue[]) {
    super(message);
    this.issues = issues;
  }
}

export interface TenantStore {
  get(id: string): Promise<TenantRecord | undefined>;
  /** Validates the input (InvalidTenantError); false when the id is taken. */
  create(tenant: NewTenant): Promise<boolean>;
  /** The new revision, or undefined when no such tenant exists. */
  update(id: string, changes: TenantChanges): Promise<string | undefined>;
  /** All tenants by id. */
  list(): Promise<TenantRecord[]>;
}

export interface TenantStoreOptions {
  readonly now?: () => Date;
}

export function newRevision(): string {
  return randomBytes(12).toString('base64url');
}

/** The one validation both backends run at the edge of create. */
export function parseNewTenant(tenant: NewTenant): Required<NewTenant> {
  const parsed = newTenantSchema.safeParse(tenant);
  if (!parsed.success) {
    throw new InvalidTenantError(z.prettifyError(parsed.error), parsed.error.issues);
  }
  return { ...parsed.data, settings: parsed.data.settings ?? {} };
}

export function parseTenantChanges(changes: TenantChanges): TenantChanges {
  const parsed = tenantChangesSchema.safeParse(changes);
  if (!parsed.success) {
    throw new InvalidTenantError(z.prettifyError(parsed.error), parsed.error.issues);
  }
  // An explicit `undefined` means "unchanged", never "erase" (the driver would store null).
  const { displayName, settings, disabled } = parsed.data;
  return {
    ...(displayName !== undefined && { displayName }),
    ...(settings !== undefined && { settings }),
    ...(disabled !== undefined && { disabled }),
  };
}
