import { createLocalJWKSet, type JSONWebKeySet } from 'jose';

type LocalKeySet = ReturnType<typeof createLocalJWKSet>;

const made = new WeakMap<JSONWebKeySet, LocalKeySet>();

/**
 * jose's key set for verifying against `jwks`, one per key set object. A local JWKS imports a
 * key the first time a token names it and keeps it, so a set made per request imported the
 * key on every verification (a token exchange spent more on that than on the signature).
 * Key sets are replaced, not edited, when keys change (a tenant's runtime is rebuilt), so a
 * new object gets a new set and this one is collected with the old.
 */
export function localKeySet(jwks: JSONWebKeySet): LocalKeySet {
  let keySet = made.get(jwks);
  if (!keySet) {
    keySet = createLocalJWKSet(jwks);
    made.set(jwks, keySet);
  }
  return keySet;
}
