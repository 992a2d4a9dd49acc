import { z } from 'zod';

const DAY = 86_400;

/**
 * A tenant's signing-key lifecycle (tenant settings `keys`): when the scheduler rotates, how
 * early it publishes the successor, and how long a retired key stays published at least.
 */
export const keyRotationSettingsSchema = z.object({
  /** The scheduler rotates each alg's active key once it has signed this long. false: by command only. */
  scheduledRotation: z.boolean().default(true),
  rotationDays: z.number().int().min(1).max(3650).default(90),
  /**
   * The next key is prepared (published in the JWKS, not signing) this long before the
   * rotation, and is never activated before it has been published this long: resource
   * servers that cache the JWKS know it before the first token it signs.
   */
  prepareAheadSeconds: z.number().int().min(60).max(30 * DAY).default(DAY),
  /**
   * How long a retired key stays published at least. It is never shorter than the longest
   * token lifetime plus 300 s (tenant-settings.ts signedTokenRetentionSeconds), whatever is
   * set here: a longer value covers tokens that resource servers accept with clock leeway.
   */
  retentionSeconds: z.number().int().min(0).max(400 * DAY).optional(),
}).prefault({}).refine(
  (k) => k.prepareAheadSeconds < k.rotationDays * DAY,
  { message: 'prepareAheadSeconds must be shorter than rotationDays', path: ['prepareAheadSeconds'] },
);

export type KeyRotationSettings = z.output<typeof keyRotationSettingsSchema>;
