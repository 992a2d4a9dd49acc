import { errors, Provider, type Adapter, type AdapterFactory } from 'oidc-provider';
import { protectStoredClientSecret } from '../registration/client-secrets.ts';
import type { ModelName, ModelStore, Payload } from './model-store.ts';
import { MODEL_NAMES } from './model-store.ts';
import { isStoreUnavailable } from './unavailable.ts';

/**
 * Short-lived, hot models go to the ephemeral store (Redis in production); everything that
 * must survive a restart goes to the durable one (MongoDB). Session is ephemeral: it is
 * found by uid on every authorization request, which FerretDB could only answer with a
 * full scan, and losing one costs a login, never a grant (ARCHITECTURE.md "Storage").
 */
export const EPHEMERAL_MODELS: ReadonlySet<ModelName> = new Set<ModelName>([
  'AuthorizationCode',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'Interaction',
  'PushedAuthorizationRequest',
  'ReplayDetection',
  'Session',
  'PreAuthorizedCode',
]);

/** How long an expired device code stays findable (oidc-provider checks its `exp` itself). */
const EXPIRED_DEVICE_CODE_GRACE_SECONDS = 600;

export interface ModelStores {
  durable: ModelStore;
  ephemeral: ModelStore;
}

function isModelName(name: string): name is ModelName {
  return (MODEL_NAMES as readonly string[]).includes(name);
}

/** Every distinct store, so a grant is revoked everywhere once per store. */
function distinctStores(stores: ModelStores): ModelStore[] {
  return stores.durable === stores.ephemeral ? [stores.durable] : [stores.durable, stores.ephemeral];
}

export async function revokeGrantEverywhere(stores: ModelStores, grantId: string): Promise<void> {
  await Promise.all(distinctStores(stores).map((store) => store.revokeByGrantId(grantId)));
}

/** Removes what was issued to a client (or only the given models of it) from both stores. */
export async function revokeClientEverywhere(stores: ModelStores, clientId: string, models?: readonly ModelName[]): Promise<void> {
  await Promise.all(distinctStores(stores).map((store) => store.revokeByClientId(clientId, models)));
}

/**
 * Deletes a client and everything issued to it: RFC 7592 DELETE (through the adapter below),
 * the sweeper of unused clients, operators. Tokens go first, while the client still exists:
 * a token that outlives its client breaks oidc-provider's introspection (it looks the
 * client up and reads a property of undefined: a 500, lib/actions/introspection.js). The
 * second pass takes what a request in flight issued between the first pass and the delete.
 */
export async function removeClientEverywhere(stores: ModelStores, clientId: string): Promise<void> {
  await revokeClientEverywhere(stores, clientId);
  await stores.durable.destroy('Client', clientId);
  await revokeClientEverywhere(stores, clientId);
}

/**
 * A store that cannot be reached becomes oidc-provider's temporarily_unavailable with 503
 * (RFC 6749 §4.1.2.1, §5.2 usage): it renders as OAuth error JSON (or an error redirect at
 * /auth) instead of a generic 500, and nothing is issued that was not stored.
 */
async function guarded<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (err) {
    if (!isStoreUnavailable(err)) throw err;
    const unavailable = new errors.TemporarilyUnavailable('storage is unreachable; retry shortly', { cause: err });
    // Say when to retry, as ServiceUnavailableError does (RFC 9110 §10.2.3). oidc-provider
    // renders its errors without headers of their own but keeps those already set on the
    // request; an error that escapes to Koa's default handler gets `headers`.
    Object.assign(unavailable, { status: 503, statusCode: 503, headers: { 'Retry-After': '5' } });
    Provider.ctx?.set('Retry-After', '5');
    throw unavailable;
  }
}

/**
 * The same store, each of whose calls fails as the adapter's do (guarded above) when the
 * store cannot be reached. For stores that oidc-provider reaches through Castellan's own
 * callbacks (findAccount reads the user store): any other error there becomes its 500.
 */
export function guardedStore<T extends object>(store: T): T {
  return new Proxy(store, {
    get(target, key) {
      const value: unknown = Reflect.get(target, key);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const result: unknown = value.apply(target, args);
        return result instanceof Promise ? guarded(() => result) : result;
      };
    },
  });
}

/** The oidc-provider Adapter of one model, routed to its store. */
class RoutedAdapter implements Adapter {
  readonly #model: ModelName;
  readonly #store: ModelStore;
  readonly #stores: ModelStores;

  constructor(model: ModelName, stores: ModelStores) {
    this.#model = model;
    this.#stores = stores;
    this.#store = EPHEMERAL_MODELS.has(model) ? stores.ephemeral : stores.durable;
  }

  /** A Client's secret is stored as a digest where it is only ever compared (client-secrets.ts). */
  async upsert(id: string, payload: Payload, expiresIn?: number): Promise<void> {
    const stored = this.#model === 'Client' ? protectStoredClientSecret(payload) : payload;
    // A device code is kept a while past its expiry, so a late poll (or a late code entry)
    // is told expired_token (RFC 8628 §3.5) instead of meeting an unknown code.
    const keepFor = this.#model === 'DeviceCode' && expiresIn !== undefined && expiresIn > 0
      ? expiresIn + EXPIRED_DEVICE_CODE_GRACE_SECONDS
      : expiresIn;
    await guarded(() => this.#store.upsert(this.#model, id, stored, keepFor));
    // oidc-provider's ReplayDetection.unique() is find-then-save: two concurrent uses of one
    // jti (a client assertion, a DPoP proof) both pass its find. The store's atomic consume
    // picks one; the other is the replay it is meant to catch.
    if (this.#model === 'ReplayDetection' && !(await guarded(() => this.#store.consume(this.#model, id)))) {
      throw Object.assign(new errors.InvalidClient('this assertion (jti) was already used'), { status: 401, statusCode: 401 });
    }
  }

  async find(id: string): Promise<Payload | undefined> {
    return guarded(() => this.#store.find(this.#model, id));
  }

  async findByUid(uid: string): Promise<Payload | undefined> {
    return guarded(() => this.#store.findByUid(this.#model, uid));
  }

  async findByUserCode(userCode: string): Promise<Payload | undefined> {
    return guarded(() => this.#store.findByUserCode(this.#model, userCode));
  }

  /**
   * oidc-provider checks `consumed` and then calls consume(): two concurrent redemptions
   * both pass its check (STORES.md). The store decides the single winner; the loser is a
   * reuse, so the whole grant is revoked (RFC 9700 §4.5.3, §4.14.2) and the request gets
   * invalid_grant — an oidc-provider error, so it renders as 400, not 500.
   */
  async consume(id: string): Promise<void> {
    if (await guarded(() => this.#store.consume(this.#model, id))) return;
    const payload = await guarded(() => this.#store.find(this.#model, id));
    const grantId = payload?.grantId;
    if (grantId) {
      await this.revokeByGrantId(grantId);
      // The winner may save its new pair after that sweep; without their Grant those tokens
      // are dead (oidc-provider looks the grant up on every use), as its own reuse check does.
      await guarded(() => this.#stores.durable.destroy('Grant', grantId));
    }
    throw new errors.InvalidGrant(`${this.#model === 'RefreshToken' ? 'refresh token' : 'grant'} already used`);
  }

  /** oidc-provider destroys a Client only for RFC 7592 DELETE: its tokens and grants go with it. */
  async destroy(id: string): Promise<void> {
    if (this.#model === 'Client') await guarded(() => removeClientEverywhere(this.#stores, id));
    else await guarded(() => this.#store.destroy(this.#model, id));
  }

  /** A grant's models may sit in both stores; revoking it clears both. */
  async revokeByGrantId(grantId: string): Promise<void> {
    await guarded(() => revokeGrantEverywhere(this.#stores, grantId));
  }
}

export function createAdapterFactory(stores: ModelStores): AdapterFactory {
  return (name: string) => {
    if (!isModelName(name)) throw new Error(`oidc-provider asked for an unknown model: ${name}`);
    return new RoutedAdapter(name, stores);
  };
}
