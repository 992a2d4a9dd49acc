import { z } from 'zod';

const scopeToken = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'a scope is one RFC 6749 §3.3 token');

const LOOPBACK_HOSTS = new Set(['localhost', '[::1]']);

/**
 * Whether a URL's host is this machine: plain http is allowed there only (tests, a local
 * IdP in development). Anywhere else the code, tokens and client secret would cross the
 * network in clear.
 */
export function isLoopbackUrl(url: URL): boolean {
  return LOOPBACK_HOSTS.has(url.hostname) || /^127(?:\.\d{1,3}){3}$/.test(url.hostname);
}

/** An upstream OpenID Provider users may sign in with ("Sign in with <name>"). */
export const upstreamIdpSchema = z.object({
  /** In URLs and account links; stable. */
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'lower-case letters, digits and dashes'),
  name: z.string().min(1).max(64),
  /** Off: no button, and its sign-ins are refused (existing links stay). */
  enabled: z.boolean().default(true),
  /** Its issuer identifier; discovery is read from it. https, or http on a loopback host only. */
  issuer: z
    .url({ protocol: /^https?$/ })
    .max(2048)
    .refine((u) => {
      const url = new URL(u);
      return url.protocol === 'https:' || isLoopbackUrl(url);
    }, 'the issuer must use https (plain http only on localhost / 127.0.0.0/8 / [::1])')
    .refine((u) => !u.includes('?') && !u.includes('#'), 'an issuer has no query or fragment (RFC 8414 §2)'),
  clientId: z.string().min(1).max(2048),
  /** Environment variable holding the client secret; absent: a public client (PKCE only). */
  clientSecretEnv: z.string().regex(/^[A-Z_][A-Z0-9_]{0,127}$/).optional(),
  /** How the secret is sent to the upstream's token endpoint (RFC 6749 §2.3.1). */
  tokenEndpointAuthMethod: z.enum(['client_secret_basic', 'client_secret_post']).default('client_secret_basic'),
  scopes: z
    .array(scopeToken)
    .max(50)
    .default(['openid', 'email', 'profile'])
    .refine((s) => s.includes('openid'), 'scopes must include openid: the sign-in rests on the id_token'),
});

export const upstreamIdpsSchema = z
  .array(upstreamIdpSchema)
  .max(20)
  .default([])
  .refine((idps) => new Set(idps.map((i) => i.id)).size === idps.length, 'upstream IdP ids must be unique');

export type UpstreamIdpSettings = z.output<typeof upstreamIdpSchema>;
