import type Provider from 'oidc-provider';
import { errors } from 'oidc-provider';

/**
 * Marks an assertion's (iss, jti) used, once: true for the first use, false for every other
 * one, concurrent ones included. oidc-provider's ReplayDetection.unique() reads and then
 * saves; our adapter makes the save itself an atomic consume in the store (oidc-adapter.ts),
 * so of racing requests that all pass the read exactly one saves and the others get
 * invalid_client from it, which here means "used". The record lives in the ReplayDetection
 * model (Redis in production) until the assertion could no longer be accepted anyway.
 */
export async function useOnce(provider: Provider, assertion: { iss: string; jti: string }, acceptableUntil: number): Promise<boolean> {
  try {
    // Prefixed: an ID-JAG's record never shares an id with a client assertion's (iss = client_id).
    return await provider.ReplayDetection.unique(`id-jag ${assertion.iss}`, assertion.jti, acceptableUntil);
  } catch (err) {
    if (err instanceof errors.InvalidClient) return false;
    throw err;
  }
}
