import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { KoaContextWithOIDC } from 'oidc-provider';

/**
 * The registration gate chooses a new client's id before oidc-provider creates the client,
 * so the id can be claimed (idempotent re-registration) and admitted (the tenant's maximum)
 * first. oidc-provider asks for it through features.registration.idFactory; the request
 * object is what the gate and the provider share (each has its own Koa context).
 */
const assigned = new WeakMap<IncomingMessage, string>();

/** 128 random bits, like oidc-provider's default (nanoid, 126 bits). */
export function newClientId(): string {
  return randomBytes(16).toString('base64url');
}

export function assignClientId(req: IncomingMessage, clientId: string): void {
  assigned.set(req, clientId);
}

/** For features.registration.idFactory: the id the gate chose, else a fresh one. */
export function assignedClientId(ctx: KoaContextWithOIDC): string {
  return assigned.get(ctx.req) ?? newClientId();
}
