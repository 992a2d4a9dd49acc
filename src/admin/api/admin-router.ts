import type { Context } from 'koa';
import type { Logger } from 'pino';
import { InvalidRequestError, MethodNotAllowedError, NotFoundError } from '../../errors/errors.ts';
import { toProblemResponse } from '../../http/error-response.ts';
import { readJsonObjectBody } from '../../http/request-body.ts';
import type { CastellanMetrics } from '../../observability/metrics.ts';
import type { CastellanCore } from '../../server.ts';
import { createAuditAdmin } from '../services/audit.ts';
import { createClientAdmin } from '../services/clients.ts';
import { createGrantAdmin } from '../services/grants.ts';
import { createKeyAdmin } from '../services/keys.ts';
import { createPolicyAdmin } from '../services/policies.ts';
import { ADMIN_API_PATH, ADMIN_SCOPES, adminResourceUri } from '../services/system-tenant.ts';
import { createTenantAdmin } from '../services/tenants.ts';
import { createUserAdmin } from '../services/users.ts';
import { createAdminAuthenticator, requireScope } from './admin-auth.ts';
import { adminRoutes, type AdminRoute } from './admin-routes.ts';
import { adminOpenApiDocument } from './openapi.ts';

export interface AdminApiDeps {
  baseUrl: string;
  systemTenant: string;
  core: Pick<CastellanCore, 'storage' | 'keyring' | 'tenants' | 'audit' | 'auditEvents'>;
  log: Logger;
  /** Errors counted by code, as the OAuth endpoints' are. */
  metrics?: Pick<CastellanMetrics, 'castellanError'> | undefined;
}

export interface AdminApi {
  /** Every operation, as the router serves it and the OpenAPI document lists it. */
  readonly routes: readonly AdminRoute[];
  /** Answers a request whose path is /admin/v1 or below it. */
  handle(ctx: Context): Promise<void>;
}

export const OPENAPI_PATH = '/openapi.json';

interface CompiledRoute {
  route: AdminRoute;
  pattern: RegExp;
  names: string[];
}

function compile(route: AdminRoute): CompiledRoute {
  const names: string[] = [];
  const source = route.path.replace(/\{([A-Za-z]+)\}/g, (_m, name: string) => {
    names.push(name);
    return '([^/]+)';
  });
  return { route, pattern: new RegExp(`^${source}$`), names };
}

function decodeParam(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new InvalidRequestError('malformed percent-encoding in the path');
  }
}

/** Whether the request came with a body at all (a POST without one may leave it out). */
function hasBody(ctx: Context): boolean {
  return Number(ctx.get('Content-Length') || '0') > 0 || ctx.get('Transfer-Encoding') !== '';
}

/**
 * The admin API under /admin/v1: a table of routes (admin-routes.ts) over the admin services,
 * each behind a system-tenant access token with the route's scope; errors as RFC 9457
 * problem details, rendered from the one error mapping (src/http/error-response.ts).
 */
export function createAdminApi(deps: AdminApiDeps): AdminApi {
  const { core } = deps;
  const routes = adminRoutes({
    tenants: createTenantAdmin(core, { systemTenant: deps.systemTenant, adminResource: adminResourceUri(deps.baseUrl), adminScopes: ADMIN_SCOPES }),
    clients: createClientAdmin(core),
    users: createUserAdmin(core),
    keys: createKeyAdmin(core),
    policies: createPolicyAdmin(core),
    grants: createGrantAdmin(core),
    audit: createAuditAdmin(core),
  });
  const compiled = routes.map(compile);
  const authenticate = createAdminAuthenticator({ baseUrl: deps.baseUrl, systemTenant: deps.systemTenant, tenants: core.tenants, keyring: core.keyring });
  let openApi: string | undefined;

  async function dispatch(ctx: Context, path: string): Promise<void> {
    if (path === OPENAPI_PATH) {
      if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw new MethodNotAllowedError(['GET']);
      openApi ??= JSON.stringify(adminOpenApiDocument(routes, { baseUrl: deps.baseUrl, tokenEndpoint: `${core.tenants.issuerFor(deps.systemTenant)}/token` }));
      ctx.type = 'application/json';
      ctx.body = openApi;
      return;
    }
    const onPath = compiled.map((c) => ({ c, match: c.pattern.exec(path) })).filter((m) => m.match !== null);
    if (onPath.length === 0) throw new NotFoundError();
    const found = onPath.find((m) => m.c.route.method === ctx.method);
    if (!found?.match) throw new MethodNotAllowedError(onPath.map((m) => m.c.route.method));
    const { route, names } = found.c;
    const params = Object.fromEntries(names.map((name, i) => [name, decodeParam(found.match?.[i + 1] ?? '')]));

    const principal = await authenticate(ctx);
    requireScope(principal, route.scope);
    const body = route.body && (route.body.required || hasBody(ctx)) ? await readJsonObjectBody(ctx) : undefined;
    const result = await route.handle({ params, query: { ...ctx.query }, body, actor: principal.actor });
    ctx.status = route.success.status;
    if (route.success.status !== 204) ctx.body = result;
  }

  return {
    routes,
    async handle(ctx) {
      ctx.set('Cache-Control', 'no-store');
      try {
        await dispatch(ctx, ctx.path.slice(ADMIN_API_PATH.length) || '/');
      } catch (err) {
        const problem = toProblemResponse(err, deps.log);
        deps.metrics?.castellanError(ctx.path, problem.body.error);
        ctx.status = problem.status;
        for (const [name, value] of Object.entries(problem.headers)) ctx.set(name, value);
        ctx.type = 'application/problem+json';
        ctx.body = JSON.stringify(problem.body);
      }
    },
  };
}
