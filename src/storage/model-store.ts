import type { AdapterPayload } from 'oidc-provider';

/** oidc-provider's persisted model names. */
export const MODEL_NAMES = [
  'Session',
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'ClientCredentials',
  'Client',
  'InitialAccessToken',
  'RegistrationAccessToken',
  'Interaction',
  'ReplayDetection',
  'PushedAuthorizationRequest',
  'Grant',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
] as const;

export type ModelName = (typeof MODEL_NAMES)[number];

export type Payload = AdapterPayload;

/**
 * One backend's storage of oidc-provider models: the seven Adapter verbs with the model
 * passed in, so one connection serves every model and nothing model-specific leaks in.
 *
 * Contract (test/contract/model-store.cases.ts runs it against every backend):
 * - upsert replaces the whole record; `expiresIn` (seconds) bounds its life, and every
 *   read checks expiry itself whether or not the server expires records.
 * - consume is atomic: among concurrent callers exactly one gets `true`; later calls and
 *   calls for a missing record get `false`. After it, find() shows `consumed` (epoch s).
 * - revokeByGrantId removes every record of any model in this store carrying that grantId.
 * - revokeByClientId removes every record of the given models (default: every model) in
 *   this store whose payload carries that top-level `clientId`: tokens, codes, grants and
 *   registration access tokens of a deleted client. The Client record itself (`client_id`)
 *   is not among them. Rare (client deletion), so backends may scan.
 * - findByUid / findByUserCode look up the `uid` / `userCode` payload fields.
 */
export interface ModelStore {
  upsert(model: ModelName, id: string, payload: Payload, expiresIn?: number): Promise<void>;
  find(model: ModelName, id: string): Promise<Payload | undefined>;
  findByUid(model: ModelName, uid: string): Promise<Payload | undefined>;
  findByUserCode(model: ModelName, userCode: string): Promise<Payload | undefined>;
  consume(model: ModelName, id: string): Promise<boolean>;
  destroy(model: ModelName, id: string): Promise<void>;
  revokeByGrantId(grantId: string): Promise<void>;
  revokeByClientId(clientId: string, models?: readonly ModelName[]): Promise<void>;
}

/** Which records an operator's listing asks for (the admin API); every field optional. */
export interface RecordQuery {
  /** The payload's top-level `clientId` (grants, tokens) or, for Client records, `client_id`. */
  readonly clientId?: string;
  /** The payload's `accountId` (grants, tokens: the user). */
  readonly accountId?: string;
  /** At most this many, by id order. Default 1000. */
  readonly limit?: number;
  /** Only records whose id sorts after this one: the last id of the previous page. */
  readonly after?: string;
}

export interface ListedRecord {
  readonly id: string;
  readonly payload: Payload;
}

/**
 * Listing by payload fields, for operators only (the admin API): backends may scan (FerretDB
 * does, STORES.md), so nothing on a request's hot path calls it. Expired records are left out.
 */
export interface RecordLister {
  list(model: ModelName, query?: RecordQuery): Promise<ListedRecord[]>;
}

export const DEFAULT_LIST_LIMIT = 1000;

/** Whether a payload matches a listing query (the part every backend checks in process). */
export function matchesRecordQuery(model: ModelName, payload: Payload, query: RecordQuery): boolean {
  if (query.accountId !== undefined && payload['accountId'] !== query.accountId) return false;
  if (query.clientId !== undefined) {
    const clientId = model === 'Client' ? payload['client_id'] : payload['clientId'];
    if (clientId !== query.clientId) return false;
  }
  return true;
}

/** Creates the ModelStore of one namespace (a tenant) on a shared connection. */
export type ModelStoreFactory = (namespace: string) => ModelStore;

/** A record as the durable store keeps it: the payload and its own expiry (epoch ms), if any. */
export interface StoredRecord {
  payload: Payload;
  expiresAt: number | undefined;
}

/** A store that can also say when a record expires (MongoDB): read copies must not outlive it. */
export interface RecordStore extends ModelStore {
  findRecord(model: ModelName, id: string): Promise<StoredRecord | undefined>;
}
