import { z } from 'zod';

const scopeToken = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'a scope is one RFC 6749 §3.3 token');

/** How a tenant's pages look: sign-in, consent, device and sign-out. */
export const brandingSchema = z.object({
  /** Shown on every page; https only (never a URL that could track or mix content). */
  logoUri: z.url({ protocol: /^https$/ }).optional(),
  /** Buttons and links, #rrggbb; white text must stay readable on it (WCAG AA). */
  accentColor: z.string().regex(/^#[0-9a-fA-F]{6}$/, 'a colour as #rrggbb').default('#1d4ed8'),
}).prefault({});

/** What the consent page says about scopes, and which ones the user may leave out. */
export const consentSettingsSchema = z.object({
  /** Human words for each scope, shown instead of the bare scope name. */
  scopeDescriptions: z.record(scopeToken, z.string().min(1).max(200)).default({}),
  /** Scopes the user cannot uncheck (openid never can); every other requested scope is optional. */
  requiredScopes: z.array(scopeToken).default([]),
}).prefault({});

export type BrandingSettings = z.output<typeof brandingSchema>;
export type ConsentSettings = z.output<typeof consentSettingsSchema>;
