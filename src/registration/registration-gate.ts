import type { Context } from 'koa';
import type { Client } from 'oidc-provider';
import { InvalidSoftwareStatementError, RegistrationRefusedError } from '../errors/errors.ts';
import { handBodyToProvider } from '../http/provider-body.ts';
import { readJsonObjectBody } from '../http/request-body.ts';
import type { PolicyHooks } from '../policy/hooks.ts';
import type { ModelStores } from '../storage/oidc-adapter.ts';
import { isStoreUnavailable } from '../storage/unavailable.ts';
import type { TenantRuntime } from '../tenants/tenant-registry.ts';
import { OIDC_SCOPES, type TenantSettings } from '../tenants/tenant-settings.ts';
import type { RegistrationAbuseStore } from './abuse/abuse-store.ts';
import { assignClientId, newClientId } from './abuse/assigned-client-id.ts';
import { claimRegistration } from './abuse/idempotent-registration.ts';
import { admitSelfRegisteredClient, enforceRegistrationRate } from './abuse/registration-limits.ts';
import { acceptEchoedClientSecret } from './client-secrets.ts';
import { validateClientMetadata, type ClientMetadata } from './client-metadata.ts';
import { verifySoftwareStatement } from './software-statement.ts';

export type RegistrationRequestKind = 'create' | 'update';

/** Scopes a self-registered client may ask for. */
export function registrableScopes(settings: TenantSettings): string[] {
  return settings.registration.allowedScopes ?? [...OIDC_SCOPES, ...settings.scopes];
}

/**
 * Checks what a client says about itself before oidc-provider sees it (RFC 7591 §2, §2.3,
 * §3.2.2): a software statement where the tenant requires or receives one (its claims win),
 * Castellan's metadata rules, and the policy hook. Returns the metadata to register.
 */
export async function checkRegistration(
  body: Record<string, unknown>,
  kind: RegistrationRequestKind,
  tenantId: string,
  settings: TenantSettings,
  policy: PolicyHooks,
): Promise<ClientMetadata & { client_id?: string; client_secret?: string }> {
  const { registration } = settings;
  const { software_statement: statement, ...requested } = body;
  if (statement === undefined && registration.mode === 'software-statement' && kind === 'create') {
    throw new InvalidSoftwareStatementError('this tenant requires a software_statement');
  }
  const asserted = statement === undefined ? {} : await verifySoftwareStatement(statement, registration.trustedPublishers);
  const merged = { ...requested, ...asserted };
  const allowedScopes = registrableScopes(settings);
  // The scopes a client names at registration are checked against the tenant's ceiling, and
  // the client is then held to that ceiling, not to what it named: MCP clients register with
  // the first challenge's scope and must still be able to step up later (consent decides
  // what the user actually grants).
  const metadata = { ...validateClientMetadata(merged, { allowedScopes }), scope: allowedScopes.join(' ') };

  const decision = await policy.acceptRegistration({ tenant: tenantId, metadata, kind: 'dynamic-registration' });
  if (!decision.accept) throw new RegistrationRefusedError(decision.reason);

  // RFC 7592 §2.2: an update names the client (and may echo its secret); oidc-provider checks both.
  if (kind === 'update') {
    return {
      ...metadata,
      ...(typeof body.client_id === 'string' ? { client_id: body.client_id } : {}),
      ...(typeof body.client_secret === 'string' ? { client_secret: body.client_secret } : {}),
    };
  }
  return metadata;
}

/** What the gate needs besides the tenant: the policy hooks and the self-registration stores. */
export interface RegistrationGateDeps {
  policy: PolicyHooks;
  abuse: RegistrationAbuseStore;
  modelStores(tenant: string): ModelStores;
}

/** RFC 7592 client configuration endpoint, below the registration endpoint. */
const CLIENT_PATH = /^\/reg\/([^/]+)$/;

/** See acceptEchoedClientSecret: reads the stored client only when the update echoes a secret. */
async function withEchoedSecretAccepted(
  runtime: TenantRuntime,
  clientId: string,
  metadata: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  if (typeof metadata['client_secret'] !== 'string') return metadata;
  const stored = await runtime.provider.Client.find(clientId);
  return acceptEchoedClientSecret(metadata, stored?.clientSecret);
}

/**
 * Registration requests (RFC 7591 at /reg, RFC 7592 at /reg/<client_id>) pass through here
 * on their way to oidc-provider (`handOver`): the gate checks them first and keeps the books
 * of self-registered clients after oidc-provider answered.
 */
export async function guardRegistration(
  ctx: Context,
  runtime: TenantRuntime,
  innerPath: string,
  deps: RegistrationGateDeps,
  handOver: () => Promise<void>,
): Promise<void> {
  const clientPath = CLIENT_PATH.exec(innerPath);
  if (innerPath === '/reg' && ctx.method === 'POST') return registerClient(ctx, runtime, deps, handOver);
  if (clientPath && ctx.method === 'PUT') return updateClient(ctx, runtime, decodeURIComponent(clientPath[1] ?? ''), deps, handOver);
  await handOver();
  if (clientPath && ctx.method === 'DELETE' && ctx.res.statusCode === 204) {
    // The client, its tokens and grants are gone (storage/oidc-adapter.ts): free its place.
    await deps.abuse.forgetClient(runtime.tenantId, decodeURIComponent(clientPath[1] ?? ''));
  }
}

/**
 * RFC 7591 registration: the rate limit, the checks, then either the existing client
 * (idempotent re-registration of a public client) or a new one admitted under the tenant's
 * maximum. The new client's id is chosen here, so it can be claimed and admitted first;
 * whatever oidc-provider refuses is released again.
 */
async function registerClient(
  ctx: Context,
  runtime: TenantRuntime,
  deps: RegistrationGateDeps,
  handOver: () => Promise<void>,
): Promise<void> {
  const { tenantId, settings } = runtime;
  const { limits } = settings.registration;
  await enforceRegistrationRate(deps.abuse, tenantId, ctx.ip, limits);
  const metadata = await checkRegistration(await readJsonObjectBody(ctx), 'create', tenantId, settings, deps.policy);

  const clientId = newClientId();
  let fingerprint: string | undefined;
  if (metadata.token_endpoint_auth_method === 'none') {
    const outcome = await claimRegistration(
      { abuse: deps.abuse, findClient: (id) => runtime.provider.Client.find(id) },
      tenantId,
      metadata,
      clientId,
    );
    if (outcome.kind === 'existing') return answerWithExistingClient(ctx, outcome.client);
    fingerprint = outcome.fingerprint;
  }

  const release = async (): Promise<void> => {
    await deps.abuse.forgetClient(tenantId, clientId);
    if (fingerprint !== undefined) await deps.abuse.releaseFingerprint(tenantId, fingerprint, clientId);
  };
  try {
    await admitSelfRegisteredClient(deps.abuse, tenantId, clientId, limits, fingerprint);
    assignClientId(ctx.req, clientId);
    handBodyToProvider(ctx, metadata);
    await handOver();
  } catch (err) {
    // A store that cannot be reached would make the release wait out the same outage (a
    // second store timeout before the 503). Left behind: an admission without a client,
    // which the unused-client sweep forgets, and a fingerprint claim that goes stale.
    if (!isStoreUnavailable(err)) await release();
    throw err;
  }
  if (ctx.res.statusCode !== 201) await release();
}

/**
 * The answer to a re-registration with identical metadata: 201 and the existing client's
 * registration (RFC 7591 §3.2.1) WITHOUT a registration access token. A public client's
 * metadata is public, so handing out a management token here would let anyone who copies
 * it change the redirect URIs of, or delete, a client many users share; the original
 * registrant keeps the token it was given.
 */
async function answerWithExistingClient(ctx: Context, client: Client): Promise<void> {
  ctx.status = 201;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = client.metadata();
}

/**
 * RFC 7592 update: the same checks as a registration. A client whose metadata changed no
 * longer answers re-registrations with its old metadata, so its fingerprint is released.
 */
async function updateClient(
  ctx: Context,
  runtime: TenantRuntime,
  clientId: string,
  deps: RegistrationGateDeps,
  handOver: () => Promise<void>,
): Promise<void> {
  const { tenantId, settings } = runtime;
  const metadata = await checkRegistration(await readJsonObjectBody(ctx), 'update', tenantId, settings, deps.policy);
  handBodyToProvider(ctx, await withEchoedSecretAccepted(runtime, clientId, metadata));
  await handOver();
  if (ctx.res.statusCode === 200) await deps.abuse.detachFingerprint(tenantId, clientId);
}
