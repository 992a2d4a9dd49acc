import { z } from 'zod';
import { SIGNING_ALGORITHMS } from '../../tenants/tenant-settings.ts';
import type { AdminActor } from '../services/admin-actor.ts';
import { parseAdminInput } from '../services/admin-events.ts';
import type { AuditAdmin } from '../services/audit.ts';
import type { ClientAdmin } from '../services/clients.ts';
import { grantSelectorSchema, type GrantAdmin } from '../services/grants.ts';
import type { KeyAdmin } from '../services/keys.ts';
import type { Page } from '../services/paging.ts';
import { policyUpdateSchema, type PolicyAdmin } from '../services/policies.ts';
import type { AdminScope } from '../services/system-tenant.ts';
import { tenantCreateSchema, tenantUpdateSchema, type TenantAdmin } from '../services/tenants.ts';
import { userCreateSchema, type UserAdmin } from '../services/users.ts';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface AdminRequest {
  /** Path parameters by their name in the route's template. */
  params: Readonly<Record<string, string>>;
  query: Readonly<Record<string, unknown>>;
  /** The JSON object body, where the route takes one. */
  body: Record<string, unknown> | undefined;
  actor: AdminActor;
}

type JsonSchema = Record<string, unknown>;

export interface QueryParameter {
  name: string;
  description: string;
  schema: JsonSchema;
}

/**
 * One admin operation: the router dispatches on it and the OpenAPI document is written from
 * it, so a route cannot exist undocumented (test/integration/admin-api.test.ts holds both to it).
 */
export interface AdminRoute {
  method: HttpMethod;
  /** OpenAPI path template below /admin/v1, e.g. /tenants/{tenant}. */
  path: string;
  scope: AdminScope;
  operationId: string;
  summary: string;
  description?: string;
  tag: 'tenants' | 'clients' | 'users' | 'keys' | 'policies' | 'grants' | 'audit';
  /** JSON request body: its schema, and whether it may be left out. */
  body?: { schema: JsonSchema; required: boolean; description?: string };
  query?: readonly QueryParameter[];
  /** 201 for a creation, 204 when nothing is returned. */
  success: { status: 200 | 201 | 204; description: string };
  handle(request: AdminRequest): Promise<unknown>;
}

export interface AdminServices {
  tenants: TenantAdmin;
  clients: ClientAdmin;
  users: UserAdmin;
  keys: KeyAdmin;
  policies: PolicyAdmin;
  grants: GrantAdmin;
  audit: AuditAdmin;
}

/** zod schema → JSON Schema (draft 2020-12, what OpenAPI 3.1 uses), as the input it accepts. */
export function jsonSchemaOf(schema: z.ZodType): JsonSchema {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

/** RFC 7591 metadata: checked by src/registration/client-metadata.ts, the one validator of it. */
const CLIENT_METADATA_SCHEMA: JsonSchema = {
  type: 'object',
  description: 'RFC 7591 client metadata (redirect_uris, grant_types, response_types, token_endpoint_auth_method, client_name, scope, jwks/jwks_uri, ...), held to the same rules as dynamic registration. Unknown members are ignored.',
  properties: {
    redirect_uris: { type: 'array', items: { type: 'string' } },
    grant_types: { type: 'array', items: { type: 'string' } },
    response_types: { type: 'array', items: { type: 'string' } },
    token_endpoint_auth_method: { type: 'string', enum: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'] },
    client_name: { type: 'string' },
    scope: { type: 'string', description: 'Space-separated; defaults to every scope of the tenant.' },
  },
};

const keyRotateSchema = z.strictObject({ alg: z.enum(SIGNING_ALGORITHMS).optional() });

const auditQueryParameters: QueryParameter[] = [
  { name: 'type', description: 'Only events of these types, comma-separated (e.g. admin_client_created,sign_in).', schema: { type: 'string' } },
  { name: 'from', description: 'Events at or after this time (RFC 3339).', schema: { type: 'string', format: 'date-time' } },
  { name: 'to', description: 'Events at or before this time (RFC 3339).', schema: { type: 'string', format: 'date-time' } },
  { name: 'after', description: 'Events after this one: the `next` of the previous page (`<seq>:<index>`, the chain link and the event\'s place in it).', schema: { type: 'string', pattern: '^[0-9]+(:[0-9]+)?$' } },
  { name: 'limit', description: 'Page size, 1-500 (default 100).', schema: { type: 'integer', minimum: 1, maximum: 500 } },
];

/** Listings come in pages by id (src/admin/services/paging.ts). */
const pageQueryParameters: QueryParameter[] = [
  { name: 'after', description: 'Items after this id: the `next` of the previous page.', schema: { type: 'string' } },
  { name: 'limit', description: 'Page size, 1-1000 (default 100). A full page carries `next`.', schema: { type: 'integer', minimum: 1, maximum: 1000 } },
];

const grantQueryParameters: QueryParameter[] = [
  { name: 'userId', description: 'Grants of this user (its subject). Give exactly one of userId and clientId.', schema: { type: 'string' } },
  { name: 'clientId', description: 'Grants of this client.', schema: { type: 'string' } },
  ...pageQueryParameters,
];

/** A page as the API answers it: the items under their name, and `next` when there may be more. */
function pageAnswer<T>(name: string, page: Page<T>): Record<string, unknown> {
  return { [name]: page.items, ...(page.next === undefined ? {} : { next: page.next }) };
}

function param(request: AdminRequest, name: string): string {
  return request.params[name] ?? '';
}

export function adminRoutes(services: AdminServices): AdminRoute[] {
  const { tenants, clients, users, keys, policies, grants, audit } = services;
  const t = (r: AdminRequest) => param(r, 'tenant');
  return [
    {
      method: 'GET', path: '/tenants', scope: 'admin:read', operationId: 'listTenants', tag: 'tenants',
      summary: 'List tenants', success: { status: 200, description: 'Every tenant, by id.' },
      handle: async () => ({ tenants: await tenants.list() }),
    },
    {
      method: 'POST', path: '/tenants', scope: 'admin:write', operationId: 'createTenant', tag: 'tenants',
      summary: 'Create a tenant', description: 'Its settings are checked whole (the tenant settings schema) before it is stored; its signing keys are made at once.',
      body: { schema: jsonSchemaOf(tenantCreateSchema), required: true },
      success: { status: 201, description: 'The tenant.' },
      handle: (r) => tenants.create(r.body, r.actor),
    },
    {
      method: 'GET', path: '/tenants/{tenant}', scope: 'admin:read', operationId: 'getTenant', tag: 'tenants',
      summary: 'Read a tenant and its stored settings', success: { status: 200, description: 'The tenant.' },
      handle: (r) => tenants.get(t(r)),
    },
    {
      method: 'PATCH', path: '/tenants/{tenant}', scope: 'admin:write', operationId: 'updateTenant', tag: 'tenants',
      summary: 'Change a tenant\'s display name or replace its settings',
      description: '`settings` replaces the whole settings object. Other nodes follow within about 10 s.',
      body: { schema: jsonSchemaOf(tenantUpdateSchema), required: true },
      success: { status: 200, description: 'The tenant.' },
      handle: (r) => tenants.update(t(r), r.body, r.actor),
    },
    {
      method: 'POST', path: '/tenants/{tenant}/disable', scope: 'admin:write', operationId: 'disableTenant', tag: 'tenants',
      summary: 'Disable a tenant', description: 'The tenant then answers like an unknown tenant (404) on every endpoint, so its tokens fail introspection and its JWKS is gone.',
      success: { status: 200, description: 'The tenant.' },
      handle: (r) => tenants.disable(t(r), r.actor),
    },
    {
      method: 'POST', path: '/tenants/{tenant}/enable', scope: 'admin:write', operationId: 'enableTenant', tag: 'tenants',
      summary: 'Enable a disabled tenant again', success: { status: 200, description: 'The tenant.' },
      handle: (r) => tenants.enable(t(r), r.actor),
    },
    {
      method: 'GET', path: '/tenants/{tenant}/clients', scope: 'admin:read', operationId: 'listClients', tag: 'clients',
      summary: 'List a tenant\'s clients', query: pageQueryParameters,
      success: { status: 200, description: '`clients` (metadata, never secrets), by client_id, and `next` when there may be more.' },
      handle: async (r) => pageAnswer('clients', await clients.list(t(r), r.query)),
    },
    {
      method: 'POST', path: '/tenants/{tenant}/clients', scope: 'admin:write', operationId: 'createClient', tag: 'clients',
      summary: 'Create a client', description: 'With `client_id` or a random one. For client_secret_basic/post a secret is generated and returned once, as `client_secret`; only its digest is stored.',
      body: { schema: { ...CLIENT_METADATA_SCHEMA, properties: { client_id: { type: 'string', pattern: '^[A-Za-z0-9._~-]{1,128}$' }, ...(CLIENT_METADATA_SCHEMA['properties'] as JsonSchema) } }, required: true },
      success: { status: 201, description: 'The client, and its secret (once).' },
      handle: async (r) => {
        const { client, clientSecret } = await clients.create(t(r), r.body, r.actor);
        return { ...client, ...(clientSecret === undefined ? {} : { client_secret: clientSecret }) };
      },
    },
    {
      method: 'GET', path: '/tenants/{tenant}/clients/{clientId}', scope: 'admin:read', operationId: 'getClient', tag: 'clients',
      summary: 'Read a client', success: { status: 200, description: 'Client metadata, never its secret.' },
      handle: (r) => clients.get(t(r), param(r, 'clientId')),
    },
    {
      method: 'PUT', path: '/tenants/{tenant}/clients/{clientId}', scope: 'admin:write', operationId: 'replaceClient', tag: 'clients',
      summary: 'Replace a client\'s metadata', description: 'client_id and secret are kept; a secret is generated (and returned once) if the new method needs one and the client had none.',
      body: { schema: CLIENT_METADATA_SCHEMA, required: true },
      success: { status: 200, description: 'The client.' },
      handle: async (r) => {
        const { client, clientSecret } = await clients.update(t(r), param(r, 'clientId'), r.body, r.actor);
        return { ...client, ...(clientSecret === undefined ? {} : { client_secret: clientSecret }) };
      },
    },
    {
      method: 'POST', path: '/tenants/{tenant}/clients/{clientId}/secret', scope: 'admin:write', operationId: 'rotateClientSecret', tag: 'clients',
      summary: 'Give a client a new secret', description: 'For client_secret_basic/post clients: a new secret, returned once as `client_secret`; the old one stops working at once.',
      success: { status: 200, description: 'The client and its new secret (once).' },
      handle: async (r) => {
        const { client, clientSecret } = await clients.rotateSecret(t(r), param(r, 'clientId'), r.actor);
        return { ...client, client_secret: clientSecret };
      },
    },
    {
      method: 'DELETE', path: '/tenants/{tenant}/clients/{clientId}', scope: 'admin:write', operationId: 'deleteClient', tag: 'clients',
      summary: 'Delete a client and everything issued to it', success: { status: 204, description: 'Deleted.' },
      handle: (r) => clients.delete(t(r), param(r, 'clientId'), r.actor),
    },
    {
      method: 'GET', path: '/tenants/{tenant}/users', scope: 'admin:read', operationId: 'listUsers', tag: 'users',
      summary: 'List a tenant\'s users', query: pageQueryParameters,
      success: { status: 200, description: '`users` (never password hashes or TOTP secrets), by id, and `next` when there may be more.' },
      handle: async (r) => pageAnswer('users', await users.list(t(r), r.query)),
    },
    {
      method: 'POST', path: '/tenants/{tenant}/users', scope: 'admin:write', operationId: 'createUser', tag: 'users',
      summary: 'Create a user who signs in with a password', description: 'The password is hashed with argon2id and appears in no answer, log or audit event.',
      body: { schema: jsonSchemaOf(userCreateSchema), required: true },
      success: { status: 201, description: 'The user.' },
      handle: (r) => users.create(t(r), r.body, r.actor),
    },
    {
      method: 'GET', path: '/tenants/{tenant}/users/{userId}', scope: 'admin:read', operationId: 'getUser', tag: 'users',
      summary: 'Read a user', success: { status: 200, description: 'The user.' },
      handle: (r) => users.get(t(r), param(r, 'userId')),
    },
    {
      method: 'DELETE', path: '/tenants/{tenant}/users/{userId}', scope: 'admin:write', operationId: 'deleteUser', tag: 'users',
      summary: 'Delete a user', description: 'Their grants and tokens are revoked first; the login becomes free.',
      success: { status: 204, description: 'Deleted.' },
      handle: (r) => users.delete(t(r), param(r, 'userId'), r.actor),
    },
    {
      method: 'GET', path: '/tenants/{tenant}/keys', scope: 'admin:read', operationId: 'listKeys', tag: 'keys',
      summary: 'List a tenant\'s signing keys', success: { status: 200, description: 'Public facts of each key: kid, alg, state, dates.' },
      handle: async (r) => ({ keys: await keys.list(t(r)) }),
    },
    {
      method: 'POST', path: '/tenants/{tenant}/keys/rotate', scope: 'admin:write', operationId: 'rotateKeys', tag: 'keys',
      summary: 'Rotate signing keys', description: 'One algorithm (`alg`) or, without a body, every algorithm the tenant signs with. The replaced keys stay published until their tokens have expired.',
      body: { schema: jsonSchemaOf(keyRotateSchema), required: false },
      success: { status: 200, description: 'The new active keys.' },
      handle: async (r) => {
        const { alg } = parseAdminInput(keyRotateSchema, r.body ?? {});
        return { rotated: await keys.rotate(t(r), { ...(alg === undefined ? {} : { alg }), actor: r.actor }) };
      },
    },
    {
      method: 'POST', path: '/tenants/{tenant}/keys/{kid}/retire', scope: 'admin:write', operationId: 'retireKey', tag: 'keys',
      summary: 'Retire a key at once (compromise)', description: 'It stops signing and is no longer published: tokens it signed stop verifying. An active key is replaced first.',
      success: { status: 200, description: 'The retired key and its replacement.' },
      handle: (r) => keys.retire(t(r), param(r, 'kid'), { actor: r.actor }),
    },
    {
      method: 'GET', path: '/tenants/{tenant}/policies', scope: 'admin:read', operationId: 'getPolicies', tag: 'policies',
      summary: 'Read the tenant\'s policy settings', description: 'registration, tokenExchange, deviceFlow, clientIdMetadataDocuments, consent, mfa; defaults filled in.',
      success: { status: 200, description: 'The effective policy settings.' },
      handle: (r) => policies.get(t(r)),
    },
    {
      method: 'PATCH', path: '/tenants/{tenant}/policies', scope: 'admin:write', operationId: 'updatePolicies', tag: 'policies',
      summary: 'Replace policy sections', description: 'Each section given replaces the stored one; the whole settings are checked before they are stored.',
      body: { schema: jsonSchemaOf(policyUpdateSchema), required: true },
      success: { status: 200, description: 'The effective policy settings.' },
      handle: (r) => policies.update(t(r), r.body, r.actor),
    },
    {
      method: 'GET', path: '/tenants/{tenant}/grants', scope: 'admin:read', operationId: 'listGrants', tag: 'grants',
      summary: 'List the grants of a user or of a client', query: grantQueryParameters,
      success: { status: 200, description: '`grants` (consents) with their scopes, by id, and `next` when there may be more.' },
      handle: async (r) => pageAnswer('grants', await grants.list(t(r), r.query)),
    },
    {
      method: 'POST', path: '/tenants/{tenant}/grants/revoke', scope: 'admin:write', operationId: 'revokeGrants', tag: 'grants',
      summary: 'Revoke the grants of a user or of a client', description: 'Every token issued under them goes too; for a client also its client-credentials tokens. The client stays registered.',
      body: { schema: jsonSchemaOf(grantSelectorSchema), required: true },
      success: { status: 200, description: 'How many grants were revoked.' },
      handle: (r) => grants.revoke(t(r), r.body, r.actor),
    },
    {
      method: 'GET', path: '/tenants/{tenant}/audit-events', scope: 'admin:read', operationId: 'queryAuditEvents', tag: 'audit',
      summary: 'Query the tenant\'s audit events', description: 'In chain order, filtered by type and time, a page at a time (MongoDB storage only).',
      query: auditQueryParameters,
      success: { status: 200, description: '`events` (each with its link\'s `seq`, `index` in the link, `at` and `hash`, and the `event`), and `next` when there may be more.' },
      handle: (r) => audit.query(t(r), r.query),
    },
  ];
}
