import { describe, expect, it } from 'vitest';
import { signedTokenRetentionSeconds, tenantSettingsSchema } from '../tenants/tenant-settings.ts';

describe('tenant settings: keys', () => {
  it('defaults to a 90-day schedule with the next key published a day ahead', () => {
    expect(tenantSettingsSchema.parse({}).keys).toEqual({ scheduledRotation: true, rotationDays: 90, prepareAheadSeconds: 86_400 });
  });

  it('refuses a lead time as long as the period, and nonsense values', () => {
    expect(tenantSettingsSchema.safeParse({ keys: { rotationDays: 1, prepareAheadSeconds: 86_400 } }).success).toBe(false);
    expect(tenantSettingsSchema.safeParse({ keys: { rotationDays: 0 } }).success).toBe(false);
    expect(tenantSettingsSchema.safeParse({ keys: { retentionSeconds: -1 } }).success).toBe(false);
    expect(tenantSettingsSchema.safeParse({ keys: { rotationDays: 1, prepareAheadSeconds: 3600 } }).success).toBe(true);
  });

  it('retentionSeconds lengthens how long a retired key stays published, never shortens it below the token lifetimes', () => {
    const base = signedTokenRetentionSeconds(tenantSettingsSchema.parse({}));
    expect(base).toBe(3600 + 300);
    expect(signedTokenRetentionSeconds(tenantSettingsSchema.parse({ keys: { retentionSeconds: 60 } }))).toBe(base);
    expect(signedTokenRetentionSeconds(tenantSettingsSchema.parse({ keys: { retentionSeconds: 86_400 } }))).toBe(86_400);
  });
});
