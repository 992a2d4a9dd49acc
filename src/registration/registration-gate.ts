import type { IncomingMessage } from 'node:http';
import type { Context } from 'koa';
import { InvalidSoftwareStatementError, RegistrationRefusedError } from '../errors/errors.ts';
import { readJsonObjectBody } from '../http/request-body.ts';
import type { PolicyHooks } from '../policy/hooks.ts';
import type { TenantRuntime } from '../tenants/tenant-registry.ts';
import { OIDC_SCOPES, type TenantSettings } from '../tenants/tenant-settings.ts';
import { validateClientMetadata, type ClientMetadata } from './client-metadata.ts';
import { acceptEchoedClientSecret } from './client-secrets.ts';
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
  const metadata = validateClientMetadata(merged, { allowedScopes: registrableScopes(settings) });

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

/**
 * Reads and checks a registration request, then leaves the checked metadata as the parsed
 * body for oidc-provider (which reads req.body when the stream was already consumed).
 */
export async function gateRegistration(
  ctx: Context,
  runtime: TenantRuntime,
  kind: RegistrationRequestKind,
  policy: PolicyHooks,
): Promise<void> {
  const metadata = await checkRegistration(await readJsonObjectBody(ctx), kind, runtime.tenantId, runtime.settings, policy);
  const clientId = kind === 'update' ? decodeURIComponent(ctx.path.split('/').pop() ?? '') : undefined;
  const body = clientId === undefined ? metadata : await withEchoedSecretAccepted(runtime, clientId, metadata);
  (ctx.req as IncomingMessage & { body?: unknown }).body = body;
}

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
