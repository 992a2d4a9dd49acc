import { importJWK, type JWK } from 'jose';
import { ExternalSigningKey, type JWKS } from 'oidc-provider';

export interface SigningKey {
  alg: string;
  kid: string | undefined;
  key: CryptoKey | Uint8Array;
}

export class NoSigningKeyError extends Error {
  readonly code = 'NO_ACTIVE_SIGNING_KEY';
  constructor(alg: string) {
    super(`the tenant has no active ${alg} signing key`);
    this.name = 'NoSigningKeyError';
  }
}

/**
 * The tenant's active private key of one algorithm. oidc-provider keeps its keystore to
 * itself, so this reads the JWKs it was built from: the keyring lists the active key of each
 * alg first and without key_ops; next and retired keys carry ['verify'] and never sign.
 */
export function activeSigningJwk(jwks: JWKS, alg: string): JWK {
  for (const key of jwks.keys) {
    // An ExternalSigningKey (KMS/HSM) holds no private JWK: not usable here.
    if (key instanceof ExternalSigningKey) continue;
    if (key.alg === alg && key.key_ops === undefined && typeof key.d === 'string') return key as JWK;
  }
  throw new NoSigningKeyError(alg);
}

/** Imports each algorithm's active key once per provider build (a rebuild follows rotation). */
export function signingKeys(jwks: JWKS): (alg: string) => Promise<SigningKey> {
  const imported = new Map<string, Promise<SigningKey>>();
  return (alg) => {
    let pending = imported.get(alg);
    if (!pending) {
      const jwk = activeSigningJwk(jwks, alg);
      pending = importJWK(jwk, alg).then((key) => ({ alg, kid: jwk.kid, key }));
      imported.set(alg, pending);
    }
    return pending;
  };
}
