import { z } from 'zod';
import type { User } from '../../accounts/accounts.ts';
import { InvalidUserError, LoginTakenError } from '../../accounts/user-store.ts';
import { ConflictError, InvalidRequestError, NotFoundError } from '../../errors/errors.ts';
import type { CastellanCore } from '../../server.ts';
import type { AdminActor } from './admin-actor.ts';
import { parseAdminInput, recordAdminEvent, requireTenantRecord } from './admin-events.ts';
import { createGrantAdmin } from './grants.ts';
import { pageOf, pageQuerySchema, type Page } from './paging.ts';

/** A user as operators see it: never a password hash or a TOTP secret. */
export interface UserView {
  id: string;
  login: string;
  claims: Record<string, unknown>;
  createdAt: string;
  totpEnabled: boolean;
}

export const userCreateSchema = z.strictObject({
  login: z.string().min(1).max(254),
  password: z.string().min(1).max(1024),
  email: z.email().max(320).optional(),
  name: z.string().trim().min(1).max(200).optional(),
});
export type UserCreateInput = z.input<typeof userCreateSchema>;

export function toUserView(user: User): UserView {
  return { id: user.id, login: user.login, claims: { ...user.claims }, createdAt: user.createdAt.toISOString(), totpEnabled: user.totp !== undefined };
}

export type UserAdminCore = Pick<CastellanCore, 'storage' | 'audit'>;

export interface UserAdmin {
  /** A page by user id (`pageQuerySchema`: after, limit). */
  list(tenant: string, page?: unknown): Promise<Page<UserView>>;
  get(tenant: string, id: string): Promise<UserView>;
  /** The password is hashed with argon2id; it appears in no event, log or answer. */
  create(tenant: string, input: unknown, actor: AdminActor): Promise<UserView>;
  /** Revokes the user's grants and tokens, then removes the user (the login becomes free). */
  delete(tenant: string, id: string, actor: AdminActor): Promise<void>;
}

export function createUserAdmin(core: UserAdminCore): UserAdmin {
  const { storage, audit } = core;
  const grants = createGrantAdmin(core);

  async function find(tenant: string, id: string): Promise<User> {
    await requireTenantRecord(storage.tenants, tenant);
    const user = await storage.users.findById(tenant, id);
    if (!user) throw new NotFoundError(`no user "${id.slice(0, 64)}" in tenant "${tenant}"`);
    return user;
  }

  return {
    async list(tenant, page = {}) {
      const { after, limit } = parseAdminInput(pageQuerySchema, page);
      await requireTenantRecord(storage.tenants, tenant);
      const users = (await storage.users.list(tenant, { ...(after === undefined ? {} : { after }), limit })).map(toUserView);
      return pageOf(users, limit, (user) => user.id);
    },
    async get(tenant, id) {
      return toUserView(await find(tenant, id));
    },
    async create(tenant, input, actor) {
      await requireTenantRecord(storage.tenants, tenant);
      const { login, password, email, name } = parseAdminInput(userCreateSchema, input);
      const claims = { ...(email === undefined ? {} : { email, email_verified: false }), ...(name === undefined ? {} : { name }) };
      let user: User;
      try {
        user = await storage.users.create({ tenant, login, password, claims });
      } catch (err) {
        if (err instanceof LoginTakenError) throw new ConflictError(`login "${login}" is taken in tenant "${tenant}"`);
        if (err instanceof InvalidUserError) throw new InvalidRequestError(err.message);
        throw err;
      }
      await recordAdminEvent(audit, 'admin_user_created', tenant, actor, { userId: user.id });
      return toUserView(user);
    },
    async delete(tenant, id, actor) {
      await find(tenant, id);
      // Grants first: a user half-deleted must not keep working tokens.
      const { revoked } = await grants.revoke(tenant, { userId: id }, actor);
      await storage.users.delete(tenant, id);
      await recordAdminEvent(audit, 'admin_user_deleted', tenant, actor, { userId: id, grantsRevoked: revoked });
    },
  };
}
