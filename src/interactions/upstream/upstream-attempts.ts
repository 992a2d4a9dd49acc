import { createHash } from 'node:crypto';
import { z } from 'zod';
import { InvalidRequestError } from '../../errors/errors.ts';
import type { ModelStore } from '../../storage/model-store.ts';

/**
 * One "Sign in with <IdP>" attempt's secrets, kept server-side in the tenant's ephemeral
 * store (Redis in production) between the redirect to the upstream and its callback: the
 * PKCE verifier, the nonce, the IdP and the interaction the attempt belongs to. Stored as an
 * Interaction record under an id no oidc-provider interaction can have, keyed by a hash of
 * the state so the store never holds the state itself.
 */
const MODEL = 'Interaction';
const ID_PREFIX = 'upstream-login.';
/** An attempt outlives neither this nor its interaction. */
export const ATTEMPT_TTL_SECONDS = 600;

export interface UpstreamAttempt {
  interactionUid: string;
  idp: string;
  nonce: string;
  codeVerifier: string;
}

const attemptSchema = z.object({
  interactionUid: z.string().min(1).max(128),
  idp: z.string().min(1).max(32),
  nonce: z.string().min(1).max(256),
  codeVerifier: z.string().min(43).max(128),
});

/** A state as sent back by the upstream: what we generated (base64url), bounded. */
export const stateSchema = z.string().regex(/^[A-Za-z0-9_-]{16,128}$/);

function attemptId(state: string): string {
  return ID_PREFIX + createHash('sha256').update(state).digest('base64url');
}

export async function saveAttempt(store: ModelStore, state: string, attempt: UpstreamAttempt, ttlSeconds: number): Promise<void> {
  const ttl = Math.max(1, Math.min(ATTEMPT_TTL_SECONDS, Math.floor(ttlSeconds)));
  await store.upsert(MODEL, attemptId(state), { kind: 'UpstreamLogin', extra: { ...attempt } }, ttl);
}

/**
 * The attempt a callback's state names, consumed: it works once. Refused (400) when the
 * state is unknown or expired, belongs to another interaction (so to another browser: the
 * interaction is found by this browser's cookie), or was used already. A state of another
 * interaction is not consumed, so a stranger cannot burn someone else's attempt.
 */
export async function takeAttempt(store: ModelStore, state: string, interactionUid: string): Promise<UpstreamAttempt> {
  const id = attemptId(state);
  const record = await store.find(MODEL, id);
  const parsed = record?.kind === 'UpstreamLogin' ? attemptSchema.safeParse(record.extra) : undefined;
  if (!parsed?.success) throw new InvalidRequestError('unknown or expired state');
  if (parsed.data.interactionUid !== interactionUid) throw new InvalidRequestError('the state belongs to another sign-in');
  if (record?.consumed !== undefined || !(await store.consume(MODEL, id))) throw new InvalidRequestError('this sign-in response was used already');
  return parsed.data;
}
