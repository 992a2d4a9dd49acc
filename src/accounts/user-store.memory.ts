import {
  LoginTakenError,
  loginKey,
  newUserId,
  parseNewUser,
  userKey,
  type UserRecord,
  type UserStore,
  type UserStoreOptions,
} from './user-store.ts';

/** In-process UserStore for tests and the embedded default; same keys as MongoDB's. */
export function createMemoryUserStore(options: UserStoreOptions = {}): UserStore {
  const now = options.now ?? (() => new Date());
  const logins = new Map<string, string>(); // loginKey → user id
  const users = new Map<string, UserRecord>(); // userKey → user

  return {
    async create(input) {
      const user: UserRecord = { ...parseNewUser(input), id: newUserId(), createdAt: now() };
      const login = loginKey(user.tenant, user.login);
      if (logins.has(login)) throw new LoginTakenError(`login taken in tenant ${user.tenant}`);
      logins.set(login, user.id);
      users.set(userKey(user.tenant, user.id), structuredClone(user));
      return structuredClone(user);
    },
    async findById(tenant, id) {
      const user = users.get(userKey(tenant, id));
      return user && structuredClone(user);
    },
    async findByLogin(tenant, login) {
      const id = logins.get(loginKey(tenant, login));
      const user = id === undefined ? undefined : users.get(userKey(tenant, id));
      return user && structuredClone(user);
    },
    async setTotp(tenant, id, totp) {
      const user = users.get(userKey(tenant, id));
      if (!user) return false;
      const { totp: _old, ...rest } = user;
      users.set(userKey(tenant, id), structuredClone(totp === undefined ? rest : { ...rest, totp }));
      return true;
    },
    async setRecoveryCodeHashes(tenant, id, enrolmentId, hashes) {
      const user = users.get(userKey(tenant, id));
      if (user?.totp?.id !== enrolmentId) return;
      users.set(userKey(tenant, id), { ...user, totp: { ...user.totp, recoveryCodeHashes: [...hashes] } });
    },
    async list(tenant, { after, limit = 1000 } = {}) {
      return [...users.values()]
        .filter((user) => user.tenant === tenant && (after === undefined || user.id > after))
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
        .slice(0, limit)
        .map((user) => structuredClone(user));
    },
    async delete(tenant, id) {
      const user = users.get(userKey(tenant, id));
      if (!user) return false;
      users.delete(userKey(tenant, id));
      if (logins.get(loginKey(tenant, user.login)) === id) logins.delete(loginKey(tenant, user.login));
      return true;
    },
  };
}
