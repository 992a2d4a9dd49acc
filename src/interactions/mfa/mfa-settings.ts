import { z } from 'zod';

/** Second factors for local password sign-in. */
export const mfaSettingsSchema = z.object({
  /**
   * off: no TOTP; optional: users who enrolled are asked for a code; required: every
   * password sign-in needs one, and a user without TOTP enrols at the next sign-in.
   */
  totp: z.enum(['off', 'optional', 'required']).default('optional'),
}).prefault({});

export type MfaSettings = z.output<typeof mfaSettingsSchema>;
