import { createPasswordHasher, MAX_PASSWORD_LENGTH, type PasswordHasher } from './passwords.ts';
import { InvalidUserError, type TotpEnrolment, type ListPage, type UserClaims, type UserRecord, type UserStore } from './user-store.ts';

/**
 * A user as the rest of the server sees it: the password hash and the sealed TOTP secret
 * stay in this module; only whether a TOTP factor is on (and how many recovery codes are
 * left) shows.
 */
export type User = Omit<UserRecord, 'passwordHash' | 'totp'> & {
  readonly totp?: { readonly enabledAt: Date; readonly recoveryCodesLeft: number };
};

export interface NewUser {
  readonly tenant: string;
  readonly login: string;
  /** Omit for users who only sign in through an upstream IdP. */
  readonly password?: string;
  readonly claims?: UserClaims;
}

export interface AccountServiceOptions {
  readonly users: UserStore;
  readonly hasher?: PasswordHasher;
  /** Default 8, NIST SP 800-63B's floor; a tenant's policy may ask more. */
  readonly minPasswordLength?: number;
}

/** Users with their passwords: the only door to a UserStore the rest of Castellan needs. */
export interface AccountService {
  /** Hashes the password (argon2id). Throws LoginTakenError or InvalidUserError. */
  create(user: NewUser): Promise<User>;
  findById(tenant: string, id: string): Promise<User | undefined>;
  findByLogin(tenant: string, login: string): Promise<User | undefined>;
  /**
   * The user when the password matches, else undefined. An unknown login, or a user without
   * a password, costs one argon2 verification too, so timing does not reveal which logins
   * exist. Nothing here logs, and no error carries the password.
   */
  verifyPassword(tenant: string, login: string, password: string): Promise<User | undefined>;
  /** The stored TOTP factor (secret sealed), for src/accounts/totp-service.ts only. */
  totpEnrolment(tenant: string, id: string): Promise<TotpEnrolment | undefined>;
  /** Turns TOTP on with this enrolment, or off with undefined; false for an unknown user. */
  setTotp(tenant: string, id: string, totp: TotpEnrolment | undefined): Promise<boolean>;
  /** See UserStore.setRecoveryCodeHashes. */
  setRecoveryCodeHashes(tenant: string, id: string, enrolmentId: string, hashes: readonly string[]): Promise<void>;
  /** The tenant's users (operators: the admin API and CLI). */
  list(tenant: string, page?: ListPage): Promise<User[]>;
  /** Removes the user; false when unknown. Their grants are the caller's to revoke. */
  delete(tenant: string, id: string): Promise<boolean>;
}

export function toUser(record: UserRecord): User {
  const { passwordHash: _hash, totp, ...user } = record;
  return totp === undefined
    ? user
    : { ...user, totp: { enabledAt: totp.enabledAt, recoveryCodesLeft: totp.recoveryCodeHashes.length } };
}

export function createAccountService(options: AccountServiceOptions): AccountService {
  const { users } = options;
  const hasher = options.hasher ?? createPasswordHasher();
  const minPasswordLength = options.minPasswordLength ?? 8;

  return {
    async create({ tenant, login, password, claims }) {
      if (password !== undefined && (password.length < minPasswordLength || password.length > MAX_PASSWORD_LENGTH)) {
        throw new InvalidUserError(`password must be ${minPasswordLength} to ${MAX_PASSWORD_LENGTH} characters`);
      }
      const passwordHash = password === undefined ? undefined : await hasher.hash(password);
      const record = await users.create({
        tenant,
        login,
        ...(passwordHash !== undefined && { passwordHash }),
        ...(claims !== undefined && { claims }),
      });
      return toUser(record);
    },

    async findById(tenant, id) {
      const record = await users.findById(tenant, id);
      return record && toUser(record);
    },

    async findByLogin(tenant, login) {
      const record = await users.findByLogin(tenant, login);
      return record && toUser(record);
    },

    async verifyPassword(tenant, login, password) {
      const record = await users.findByLogin(tenant, login);
      if (record?.passwordHash === undefined) {
        await hasher.verifyDummy(password);
        return undefined;
      }
      return (await hasher.verify(record.passwordHash, password)) ? toUser(record) : undefined;
    },

    async totpEnrolment(tenant, id) {
      return (await users.findById(tenant, id))?.totp;
    },
    setTotp: (tenant, id, totp) => users.setTotp(tenant, id, totp),
    setRecoveryCodeHashes: (tenant, id, enrolmentId, hashes) => users.setRecoveryCodeHashes(tenant, id, enrolmentId, hashes),
    list: async (tenant, page) => (await users.list(tenant, page)).map(toUser),
    delete: (tenant, id) => users.delete(tenant, id),
  };
}
