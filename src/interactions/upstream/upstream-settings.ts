import { z } from 'zod';

const scopeToken = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'a scope is one RFC 6749 §3.3 token');

/** An upstream OpenID Provider users may sign in with ("Sign in with <name>"). */
export const upstreamIdpSchema = z.object({
  /** In URLs and account links; stable. */
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'lower-case letters, digits and dashes'),
  name: z.string().min(1).max(64),
  /** Its issuer identifier; discovery is read from it. */
  issuer: z.url({ protocol: /^https?$/ }),
  clientId: z.string().min(1).max(2048),
  /** Environment variable holding the client secret; absent: a public client (PKCE only). */
  clientSecretEnv: z.string().regex(/^[A-Z_][A-Z0-9_]{0,127}$/).optional(),
  scopes: z.array(scopeToken).default(['openid', 'email', 'profile']),
});

export const upstreamIdpsSchema = z
  .array(upstreamIdpSchema)
  .max(20)
  .default([])
  .refine((idps) => new Set(idps.map((i) => i.id)).size === idps.length, 'upstream IdP ids must be unique');

export type UpstreamIdpSettings = z.output<typeof upstreamIdpSchema>;
