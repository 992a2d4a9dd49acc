import { createMemoryUserStore } from '../../src/accounts/user-store.memory.ts';
import { describeUserStoreContract } from './user-store.cases.ts';

describeUserStoreContract('memory', async (now) => createMemoryUserStore({ now }));
