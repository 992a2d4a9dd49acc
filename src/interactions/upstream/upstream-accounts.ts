import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { z } from 'zod';
import type { AccountService } from '../../accounts/accounts.ts';
import type { UpstreamLinkStore } from '../../accounts/upstream-links.ts';
import { LoginTakenError, type UserClaims } from '../../accounts/user-store.ts';
import type { AuditSink } from '../../observability/audit.ts';

/** OIDC Core §2: `sub` is at most 255 ASCII characters. */
export const upstreamSubjectSchema = z.string().regex(/^[\x20-\x7E]{1,255}$/);

const text = z.string().trim().min(1).max(256);
/** The profile claims a first sign-in copies into the new local user; anything else is dropped. */
const profileSchema = z.object({
  name: text.optional().catch(undefined),
  given_name: text.optional().catch(undefined),
  family_name: text.optional().catch(undefined),
  email: z.email().max(254).optional().catch(undefined),
  email_verified: z.boolean().optional().catch(undefined),
});

/** The claims a new user gets from the upstream's id_token and userinfo (userinfo wins). */
export function profileClaims(...sources: ReadonlyArray<Record<string, unknown> | undefined>): UserClaims {
  const merged = Object.assign({}, ...sources.filter(Boolean)) as Record<string, unknown>;
  const { email_verified: verified, ...profile } = profileSchema.parse(merged);
  const claims: UserClaims = Object.fromEntries(Object.entries(profile).filter(([, v]) => v !== undefined));
  // email_verified is the upstream's word about its own check; without an address it means nothing.
  if (claims.email !== undefined && verified !== undefined) claims.email_verified = verified;
  return claims;
}

/** `<idp>:<sub>` when that is a fine login, else `<idp>:<hash of sub>`. */
function loginFor(idp: string, subject: string): string {
  return /^[\x21-\x7E]{1,200}$/.test(subject) ? `${idp}:${subject}` : `${idp}:${createHash('sha256').update(subject).digest('base64url')}`;
}

export interface FederatedIdentity {
  tenant: string;
  /** The tenant's IdP entry. */
  idp: string;
  /** The id_token's `iss` and `sub`, validated. */
  issuer: string;
  subject: string;
}

export interface LinkDeps {
  accounts: AccountService;
  upstreamLinks: UpstreamLinkStore;
  /** Records each new link (`upstream_linked`). */
  audit?: AuditSink;
}

/** How long a first sign-in that lost the race for the login waits for the winner's link. */
const LINK_WAIT_STEPS = 20;
const LINK_WAIT_MS = 100;

/**
 * The local user an upstream identity signs in as: the linked one, or on the first sign-in a
 * new passwordless user (login `<idp>:<sub>`, the upstream's profile claims) linked to it.
 * Never an existing user found by e-mail address or login: an upstream asserting someone's
 * address must not take over their account. `profile` is only called on a first sign-in.
 */
export async function linkedUserId(
  deps: LinkDeps,
  identity: FederatedIdentity,
  profile: () => Promise<UserClaims>,
): Promise<{ userId: string; created: boolean }> {
  const { tenant, idp, issuer, subject } = identity;
  const existing = await deps.upstreamLinks.find(tenant, issuer, subject);
  if (existing) return { userId: existing.userId, created: false };

  const claims = await profile();
  const login = loginFor(idp, subject);
  let userId: string;
  try {
    userId = (await deps.accounts.create({ tenant, login, claims })).id;
  } catch (err) {
    if (!(err instanceof LoginTakenError)) throw err;
    // Most likely a concurrent first sign-in of the same identity created this user and is
    // about to link it: wait for its link rather than make a second user.
    for (let i = 0; i < LINK_WAIT_STEPS; i += 1) {
      await delay(LINK_WAIT_MS);
      const link = await deps.upstreamLinks.find(tenant, issuer, subject);
      if (link) return { userId: link.userId, created: false };
    }
    // No link came: the login is someone else's (never adopted) or a crash left it unlinked.
    userId = (await deps.accounts.create({ tenant, login: `${login.slice(0, 230)}:${randomBytes(6).toString('base64url')}`, claims })).id;
  }
  // The insert with a unique key decides: a concurrent first sign-in that got here first wins,
  // and this one signs in as the winner's user (the user made above stays unlinked, unusable).
  const { link, created } = await deps.upstreamLinks.link({ tenant, issuer, subject, userId, idp });
  if (created) await deps.audit?.record({ type: 'upstream_linked', tenant, outcome: 'success', idp, issuer, userId: link.userId });
  return { userId: link.userId, created };
}
