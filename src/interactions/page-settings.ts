import { z } from 'zod';

const scopeToken = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'a scope is one RFC 6749 §3.3 token');

export const DEFAULT_ACCENT_COLOR = '#1d4ed8';

/** WCAG 2.x relative luminance of an sRGB colour given as #rrggbb. */
function relativeLuminance(hex: string): number {
  const channel = (offset: number) => {
    const c = Number.parseInt(hex.slice(offset, offset + 2), 16) / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
}

/** WCAG 2.x contrast ratio of a #rrggbb colour against white (1 to 21). */
export function contrastWithWhite(hex: string): number {
  return 1.05 / (relativeLuminance(hex) + 0.05);
}

/** WCAG 2.1 AA for normal text (1.4.3). */
export const MIN_CONTRAST = 4.5;

/** How a tenant's pages look: sign-in, consent, device, sign-out and error pages. */
export const brandingSchema = z.object({
  /** Shown on every page; https only (never a URL that could track or mix content). */
  logoUri: z.url({ protocol: /^https$/ }).max(2048).optional(),
  /**
   * Buttons (white text on it), links and focus rings on white, #rrggbb. Refused unless it
   * reaches WCAG AA contrast (4.5:1) against white: the pages never pick another text colour
   * behind the operator's back, so what is configured is what users see.
   */
  accentColor: z
    .string()
    .regex(/^#[0-9a-fA-F]{6}$/, 'a colour as #rrggbb')
    .refine((c) => contrastWithWhite(c) >= MIN_CONTRAST, 'white text on this colour is below WCAG AA contrast (4.5:1); choose a darker colour')
    .default(DEFAULT_ACCENT_COLOR),
}).prefault({});

/** What the consent page says about scopes, and which ones the user may leave out. */
export const consentSettingsSchema = z.object({
  /** Human words for each scope, shown with the scope name (built-in words cover the OpenID scopes). */
  scopeDescriptions: z.record(scopeToken, z.string().min(1).max(200)).default({}),
  /** Scopes the user cannot uncheck (openid never can); every other requested scope is optional. */
  requiredScopes: z.array(scopeToken).default([]),
}).prefault({});

export type BrandingSettings = z.output<typeof brandingSchema>;
export type ConsentSettings = z.output<typeof consentSettingsSchema>;
