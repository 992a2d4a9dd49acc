import { z } from 'zod';

/**
 * Links from an upstream identity (its issuer and `sub`) to a local user, per tenant: the
 * one way a federated sign-in finds its account. Never by e-mail address: an upstream that
 * asserts someone's address would otherwise sign in as them (account takeover).
 */
export interface UpstreamLink {
  readonly tenant: string;
  /** The upstream's issuer identifier, exactly as its id_tokens carry it in `iss`. */
  readonly issuer: string;
  /** The upstream's `sub`: unique and never reassigned within its issuer (OIDC Core §2). */
  readonly subject: string;
  /** The local user (its id is the `sub` Castellan issues). */
  readonly userId: string;
  /** The tenant's IdP entry the first sign-in came through. */
  readonly idp: string;
  readonly createdAt: Date;
}

export type NewUpstreamLink = Omit<UpstreamLink, 'createdAt'>;

export interface UpstreamLinkStore {
  find(tenant: string, issuer: string, subject: string): Promise<UpstreamLink | undefined>;
  /**
   * Links the identity unless it is linked already: exactly one of concurrent callers
   * creates the link (`created: true`); every caller gets back the link that holds.
   */
  link(link: NewUpstreamLink): Promise<{ link: UpstreamLink; created: boolean }>;
}

export interface UpstreamLinkStoreOptions {
  readonly now?: () => Date;
}

const newLinkSchema = z.object({
  tenant: z.string().min(1).max(63),
  issuer: z.string().min(1).max(2048),
  subject: z.string().min(1).max(255), // OIDC Core §2: at most 255 ASCII characters
  userId: z.string().min(1).max(128),
  idp: z.string().min(1).max(32),
});

/** The one validation both backends run at the edge of link(). */
export function parseNewLink(link: NewUpstreamLink): NewUpstreamLink {
  return newLinkSchema.parse(link);
}

/**
 * The store key of an identity: a JSON array, so no issuer or subject (which may hold any
 * character) can make two identities share a key.
 */
export function upstreamLinkKey(tenant: string, issuer: string, subject: string): string {
  return JSON.stringify([tenant, issuer, subject]);
}
