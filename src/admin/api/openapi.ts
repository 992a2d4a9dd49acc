import { ADMIN_API_PATH, ADMIN_SCOPES } from '../services/system-tenant.ts';
import type { AdminRoute } from './admin-routes.ts';

type JsonObject = Record<string, unknown>;

const PROBLEM = { $ref: '#/components/responses/Problem' };

function pathParameters(path: string): JsonObject[] {
  return [...path.matchAll(/\{([A-Za-z]+)\}/g)].map(([, name]) => ({ name, in: 'path', required: true, schema: { type: 'string' } }));
}

function operation(route: AdminRoute): JsonObject {
  const parameters = [
    ...pathParameters(route.path),
    ...(route.query ?? []).map((q) => ({ name: q.name, in: 'query', required: false, description: q.description, schema: q.schema })),
  ];
  return {
    operationId: route.operationId,
    summary: route.summary,
    ...(route.description === undefined ? {} : { description: route.description }),
    tags: [route.tag],
    security: [{ adminToken: [route.scope] }],
    ...(parameters.length ? { parameters } : {}),
    ...(route.body === undefined ? {} : {
      requestBody: { required: route.body.required, content: { 'application/json': { schema: route.body.schema } } },
    }),
    responses: {
      [String(route.success.status)]: route.success.status === 204
        ? { description: route.success.description }
        : { description: route.success.description, content: { 'application/json': { schema: { type: 'object' } } } },
      400: PROBLEM, 401: PROBLEM, 403: PROBLEM, 404: PROBLEM,
      ...(route.method === 'POST' ? { 409: PROBLEM } : {}),
    },
  };
}

/** The OpenAPI 3.1 document of the admin API, written from the same routes the router serves. */
export function adminOpenApiDocument(routes: readonly AdminRoute[], options: { baseUrl: string; tokenEndpoint: string }): JsonObject {
  const paths: Record<string, Record<string, JsonObject>> = {};
  for (const route of routes) {
    (paths[route.path] ??= {})[route.method.toLowerCase()] = operation(route);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Castellan admin API',
      version: '1',
      description: 'Tenants, clients, users, signing keys, policies, grants and audit events. Callers present an RFC 9068 JWT access token of the system tenant, obtained by client_credentials with `resource` set to this API\'s URI and scope admin:read and/or admin:write. Errors are RFC 9457 problem details.',
    },
    servers: [{ url: `${options.baseUrl}${ADMIN_API_PATH}` }],
    paths,
    components: {
      securitySchemes: {
        adminToken: {
          type: 'oauth2',
          description: `Access token of the system tenant, audience ${options.baseUrl}${ADMIN_API_PATH}.`,
          flows: { clientCredentials: { tokenUrl: options.tokenEndpoint, scopes: Object.fromEntries(ADMIN_SCOPES.map((s) => [s, s === 'admin:read' ? 'Read everything' : 'Change anything'])) } },
        },
      },
      schemas: {
        Problem: {
          type: 'object',
          required: ['type', 'title', 'status', 'detail'],
          properties: {
            type: { type: 'string', format: 'uri-reference' },
            title: { type: 'string' },
            status: { type: 'integer' },
            detail: { type: 'string' },
            error: { type: 'string', description: 'Castellan\'s error code (OAuth style).' },
          },
        },
      },
      responses: {
        Problem: { description: 'An RFC 9457 problem.', content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } },
      },
    },
  };
}
