import type { AdminActor } from '../admin/services/admin-actor.ts';
import type { AuditEvent } from '../observability/audit.ts';
import type { SigningAlg } from './signing-key-store.ts';

/** Only who acted: never a token, a secret or key material. */
function actorOf(actor: AdminActor): AdminActor {
  return { via: actor.via, subject: actor.subject, ...(actor.clientId === undefined ? {} : { clientId: actor.clientId }) };
}

export interface KeyRotatedFacts {
  tenant: string;
  alg: SigningAlg;
  /** The key that signs from now on. */
  kid: string;
  /** The key it replaced (now retired), if there was one. */
  previousKid: string | undefined;
  generation: number;
  actor: AdminActor;
  /** Why: an admin's command, the schedule, or the emergency retirement of the previous key. */
  reason: 'command' | 'schedule' | 'retire';
}

/** `key_rotated`: a new key became the active signing key of (tenant, alg). Public facts only. */
export function keyRotatedEvent(facts: KeyRotatedFacts): AuditEvent {
  return {
    type: 'key_rotated',
    tenant: facts.tenant,
    outcome: 'success',
    alg: facts.alg,
    kid: facts.kid,
    ...(facts.previousKid === undefined ? {} : { previousKid: facts.previousKid }),
    generation: facts.generation,
    reason: facts.reason,
    actor: actorOf(facts.actor),
  };
}

/** `key_retired`: a key withdrawn at once (compromise): no longer signing nor published. */
export function keyRetiredEvent(facts: { tenant: string; alg: SigningAlg; kid: string; previousState: string; replacementKid: string | undefined; actor: AdminActor }): AuditEvent {
  return {
    type: 'key_retired',
    tenant: facts.tenant,
    outcome: 'success',
    alg: facts.alg,
    kid: facts.kid,
    previousState: facts.previousState,
    ...(facts.replacementKid === undefined ? {} : { replacementKid: facts.replacementKid }),
    actor: actorOf(facts.actor),
  };
}
