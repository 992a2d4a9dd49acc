/** The RFC 8693 §4.1 `act` claim: who acts, and (nested) who acted before them. */
export interface ActClaim {
  sub: string;
  act?: ActClaim;
}

export function chainDepth(act: ActClaim | undefined): number {
  let depth = 0;
  for (let current = act; current; current = current.act) depth += 1;
  return depth;
}

/** Reads an untrusted act claim (from a verified token), refusing anything malformed. */
export function parseAct(value: unknown, limit = 16): ActClaim | undefined {
  if (value === undefined) return undefined;
  if (limit === 0 || typeof value !== 'object' || value === null) throw new TypeError('malformed act claim');
  const { sub, act } = value as { sub?: unknown; act?: unknown };
  if (typeof sub !== 'string' || !sub) throw new TypeError('malformed act claim');
  const inner = parseAct(act, limit - 1);
  return inner ? { sub, act: inner } : { sub };
}

/**
 * The act claim of an exchanged token: the new actor on top of whoever acted before. A
 * subject token without act that was issued to a client other than its subject was already
 * that client acting for the subject (an agent's token for its user), so that client
 * becomes the inner actor; an actor is never nested directly under itself.
 */
export function delegationChain(
  actor: string,
  subject: { sub: string; clientId: string | undefined; act: ActClaim | undefined },
): ActClaim {
  const prior = subject.act ?? (subject.clientId && subject.clientId !== subject.sub ? { sub: subject.clientId } : undefined);
  if (!prior) return { sub: actor };
  if (prior.sub === actor) return prior;
  return { sub: actor, act: prior };
}

/** RFC 8693 §4.4 may_act: when present, only the named party may act for the subject. */
export function mayAct(mayActClaim: unknown, actor: string): boolean {
  if (mayActClaim === undefined) return true;
  if (typeof mayActClaim !== 'object' || mayActClaim === null) return false;
  const { sub, client_id: clientId } = mayActClaim as { sub?: unknown; client_id?: unknown };
  return sub === actor || clientId === actor;
}
