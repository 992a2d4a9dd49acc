import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { ConflictError, InvalidRequestError, NotFoundError } from '../../errors/errors.ts';
import { validateClientMetadata } from '../../registration/client-metadata.ts';
import { protectStoredClientSecret } from '../../registration/client-secrets.ts';
import type { CastellanCore } from '../../server.ts';
import type { Payload } from '../../storage/model-store.ts';
import { removeClientEverywhere } from '../../storage/oidc-adapter.ts';
import { OIDC_SCOPES } from '../../tenants/tenant-settings.ts';
import type { AdminActor } from './admin-actor.ts';
import { parseAdminInput, recordAdminEvent, requireTenantRecord } from './admin-events.ts';
import { pageOf, pageQuerySchema, type Page } from './paging.ts';

/** A client as operators see it: its metadata, never its secret (stored as a digest anyway). */
export interface ClientView {
  client_id: string;
  /** Whether the client authenticates with a shared secret. */
  has_secret: boolean;
  client_id_issued_at?: number;
  [metadata: string]: unknown;
}

export interface ClientWithSecret {
  client: ClientView;
  /** Shown once, at creation (or when an update first needs one): only its digest is stored. */
  clientSecret?: string;
}

/** RFC 6749 §A.1 allows any printable ASCII; operators' ids stay URL- and log-friendly. */
export const clientIdSchema = z.string().regex(/^[A-Za-z0-9._~-]{1,128}$/, 'client_id must be 1-128 of A-Z, a-z, 0-9, ".", "_", "~", "-"');

const clientCreateSchema = z.looseObject({ client_id: clientIdSchema.optional() });

const SECRET_METHODS = new Set(['client_secret_basic', 'client_secret_post']);

export type ClientAdminCore = Pick<CastellanCore, 'storage' | 'tenants' | 'audit'>;

export interface ClientAdmin {
  /** A page by client_id (`pageQuerySchema`: after, limit). */
  list(tenant: string, page?: unknown): Promise<Page<ClientView>>;
  get(tenant: string, clientId: string): Promise<ClientView>;
  /**
   * RFC 7591 metadata (Castellan's registration rules, then oidc-provider's own check), with
   * an optional `client_id` (random otherwise). A secret is generated for secret methods.
   */
  create(tenant: string, metadata: unknown, actor: AdminActor): Promise<ClientWithSecret>;
  /** Replaces the metadata (client_id and secret kept; a secret is made if the new method needs one). */
  update(tenant: string, clientId: string, metadata: unknown, actor: AdminActor): Promise<ClientWithSecret>;
  /** Deletes the client and everything issued to it. */
  delete(tenant: string, clientId: string, actor: AdminActor): Promise<void>;
  /** A new secret for a client_secret_basic/post client, returned once; the old one stops working. */
  rotateSecret(tenant: string, clientId: string, actor: AdminActor): Promise<ClientWithSecret>;
}

export function toClientView(payload: Payload): ClientView {
  const { client_secret: secret, client_id: clientId, ...metadata } = payload;
  return { client_id: String(clientId), has_secret: typeof secret === 'string' && secret !== '', ...metadata };
}

function newClientSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function createClientAdmin(core: ClientAdminCore): ClientAdmin {
  const { storage, tenants, audit } = core;

  async function find(tenant: string, clientId: string): Promise<Payload> {
    await requireTenantRecord(storage.tenants, tenant);
    const found = clientIdSchema.safeParse(clientId).success ? await storage.modelStores(tenant).durable.find('Client', clientId) : undefined;
    if (!found) throw new NotFoundError(`no client "${clientId.slice(0, 128)}" in tenant "${tenant}"`);
    return found;
  }

  /** Castellan's metadata rules, then oidc-provider's own (what it would refuse at load time). */
  async function checked(tenant: string, input: Record<string, unknown>): Promise<Payload> {
    const runtime = await tenants.get(tenant);
    const allowedScopes = [...OIDC_SCOPES, ...runtime.settings.scopes];
    const { client_id: _id, client_secret: _secret, ...requested } = input;
    const metadata = validateClientMetadata(requested, { allowedScopes });
    const payload: Payload = { ...metadata, scope: metadata.scope ?? allowedScopes.join(' ') };
    // Throws oidc-provider's invalid_client_metadata (a 400) for what it would not load.
    await runtime.provider.Client.validate({ ...payload, client_id: 'validation', ...(SECRET_METHODS.has(String(payload['token_endpoint_auth_method'])) && { client_secret: 'x'.repeat(43) }) });
    return payload;
  }

  async function save(tenant: string, payload: Payload): Promise<void> {
    // Through the cached store: the client change reaches every node's client cache.
    await storage.modelStores(tenant).durable.upsert('Client', String(payload['client_id']), protectStoredClientSecret(payload));
  }

  return {
    async list(tenant, page = {}) {
      const { after, limit } = parseAdminInput(pageQuerySchema, page);
      await requireTenantRecord(storage.tenants, tenant);
      const records = await storage.records(tenant).list('Client', { ...(after === undefined ? {} : { after }), limit });
      return pageOf(records.map((record) => toClientView(record.payload)), limit, (client) => client.client_id);
    },
    async get(tenant, clientId) {
      return toClientView(await find(tenant, clientId));
    },
    async create(tenant, input, actor) {
      await requireTenantRecord(storage.tenants, tenant);
      const { client_id: requestedId, ...metadata } = parseAdminInput(clientCreateSchema, input);
      const payload = await checked(tenant, metadata);
      const clientId = requestedId ?? randomBytes(16).toString('base64url');
      if (await storage.modelStores(tenant).durable.find('Client', clientId)) throw new ConflictError(`client "${clientId}" exists already in tenant "${tenant}"`);
      const clientSecret = SECRET_METHODS.has(String(payload['token_endpoint_auth_method'])) ? newClientSecret() : undefined;
      const stored: Payload = {
        ...payload,
        client_id: clientId,
        client_id_issued_at: Math.floor(Date.now() / 1000),
        ...(clientSecret === undefined ? {} : { client_secret: clientSecret }),
      };
      await save(tenant, stored);
      await recordAdminEvent(audit, 'admin_client_created', tenant, actor, { clientId, authMethod: payload['token_endpoint_auth_method'] });
      return { client: toClientView(stored), ...(clientSecret === undefined ? {} : { clientSecret }) };
    },
    async update(tenant, clientId, input, actor) {
      const current = await find(tenant, clientId);
      const metadata = parseAdminInput(z.looseObject({}), input);
      const payload = await checked(tenant, metadata);
      const needsSecret = SECRET_METHODS.has(String(payload['token_endpoint_auth_method']));
      const kept = typeof current['client_secret'] === 'string' ? current['client_secret'] : undefined;
      const clientSecret = needsSecret && kept === undefined ? newClientSecret() : undefined;
      const secret = needsSecret ? (clientSecret ?? kept) : undefined;
      const stored: Payload = {
        ...payload,
        client_id: clientId,
        ...(current['client_id_issued_at'] === undefined ? {} : { client_id_issued_at: current['client_id_issued_at'] }),
        ...(secret === undefined ? {} : { client_secret: secret }),
      };
      await save(tenant, stored);
      await recordAdminEvent(audit, 'admin_client_updated', tenant, actor, { clientId, changed: Object.keys(metadata).sort() });
      return { client: toClientView(stored), ...(clientSecret === undefined ? {} : { clientSecret }) };
    },
    async rotateSecret(tenant, clientId, actor) {
      const current = await find(tenant, clientId);
      if (!SECRET_METHODS.has(String(current['token_endpoint_auth_method'] ?? 'client_secret_basic'))) {
        throw new InvalidRequestError(`client "${clientId}" does not authenticate with a shared secret`);
      }
      const clientSecret = newClientSecret();
      const stored: Payload = { ...current, client_secret: clientSecret };
      await save(tenant, stored);
      await recordAdminEvent(audit, 'admin_client_secret_rotated', tenant, actor, { clientId });
      return { client: toClientView(stored), clientSecret };
    },
    async delete(tenant, clientId, actor) {
      await find(tenant, clientId);
      await removeClientEverywhere(storage.modelStores(tenant), clientId);
      await recordAdminEvent(audit, 'admin_client_deleted', tenant, actor, { clientId });
    },
  };
}
