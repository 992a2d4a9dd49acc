import {
  activationId,
  compareKeysByAge,
  type ActivationRecord,
  type SigningAlg,
  type SigningKeyRecord,
  type SigningKeyStore,
} from './signing-key-store.ts';

/** In-process SigningKeyStore for tests and the embedded default. */
export function createMemorySigningKeyStore(): SigningKeyStore {
  const keys = new Map<string, SigningKeyRecord>();
  const activations = new Map<string, ActivationRecord>();

  return {
    async insertKey(key) {
      if (keys.has(key.kid)) return false;
      keys.set(key.kid, structuredClone(key));
      return true;
    },
    async getKey(kid) {
      const key = keys.get(kid);
      return key && structuredClone(key);
    },
    async listKeys(tenant) {
      return [...keys.values()]
        .filter((key) => key.tenant === tenant)
        .sort(compareKeysByAge)
        .map((key) => structuredClone(key));
    },
    async deleteKey(kid) {
      keys.delete(kid);
    },
    async tryActivate(activation) {
      const id = activationId(activation.tenant, activation.alg, activation.generation);
      if (activations.has(id)) return false;
      activations.set(id, structuredClone(activation));
      return true;
    },
    async listActivations(tenant: string, alg: SigningAlg) {
      return [...activations.values()]
        .filter((a) => a.tenant === tenant && a.alg === alg)
        .sort((a, b) => a.generation - b.generation)
        .map((a) => structuredClone(a));
    },
  };
}
