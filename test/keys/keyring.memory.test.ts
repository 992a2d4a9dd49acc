import { createMemorySigningKeyStore } from '../../src/keys/signing-key-store.memory.ts';
import { describeKeyringContract } from './keyring.cases.ts';

describeKeyringContract('memory', async () => {
  const store = createMemorySigningKeyStore();
  return { store, rawKeyDocument: (kid) => store.getKey(kid) };
});
