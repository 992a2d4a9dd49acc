import { once } from 'node:events';
import Koa from 'koa';
import { createServer } from 'node:http';
import { exportJWK, generateKeyPair } from 'jose';
import Provider, { type Configuration, type JWK } from 'oidc-provider';

/*
 * The baseline: bare oidc-provider (the version Castellan uses), its built-in in-memory
 * adapter, one provider, served by provider.listen() (no Koa app of ours around it).
 * Configured for the same grants and token formats as the demo tenant: a confidential
 * client with client_secret_basic, RFC 8707 resources with JWT (ES256) and opaque access
 * tokens, introspection, revocation, open dynamic registration, refresh rotation.
 *
 * BENCH_CONTROL_PORT (loopback) serves POST /refresh-tokens?n=N: N refresh tokens of
 * seeded grants for the public client, so refresh rotation can be measured without a
 * login UI.
 */

const port = Number(process.env.PORT ?? '0');
const secret = process.env.BENCH_CLIENT_SECRET ?? 'bench-secret-bench-secret-bench-secret';
const issuer = `http://127.0.0.1:${port}`;
const JWT_RESOURCE = 'http://localhost:3001/mcp';
const OPAQUE_RESOURCE = 'http://localhost:3002/api';

async function signingKeys(): Promise<JWK[]> {
  const keys: JWK[] = [];
  for (const alg of ['RS256', 'ES256'] as const) {
    const { privateKey } = await generateKeyPair(alg, { extractable: true });
    keys.push({ ...(await exportJWK(privateKey)), alg, use: 'sig', kid: alg.toLowerCase() } as JWK);
  }
  return keys;
}

async function main(): Promise<void> {
  const configuration: Configuration = {
    jwks: { keys: await signingKeys() },
    clients: [
      {
        client_id: 'bench-service',
        client_secret: secret,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      {
        client_id: 'bench-agent',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: ['http://127.0.0.1/callback'],
        token_endpoint_auth_method: 'none',
      },
    ],
    scopes: ['openid', 'offline_access', 'notes:read', 'reports:read'],
    rotateRefreshToken: true,
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      registration: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resource) => resource === OPAQUE_RESOURCE
          ? { scope: 'reports:read', audience: resource, accessTokenFormat: 'opaque' }
          : { scope: 'notes:read', audience: resource, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } },
      },
    },
  };
  const provider = new Provider(issuer, configuration);
  // BENCH_MOUNT=koa: the same provider inside an outer Koa app that hands every request over
  // the way src/http/tenant-mount.ts does (ctx.respond = false, provider.callback()), and
  // does nothing else: what a Koa app around the provider's own Koa app costs by itself.
  const server = process.env.BENCH_MOUNT === 'koa' ? mountedInKoa(provider).listen(port, '127.0.0.1') : provider.listen(port, '127.0.0.1');
  await once(server, 'listening');

  const controlPort = Number(process.env.BENCH_CONTROL_PORT ?? '0');
  if (controlPort > 0) {
    const control = createServer((req, res) => {
      const make = async (): Promise<string[]> => {
        const n = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('n') ?? '1');
        const client = await provider.Client.find('bench-agent');
        if (!client) throw new Error('bench-agent missing');
        const tokens: string[] = [];
        for (let i = 0; i < n; i += 1) {
          const accountId = `user-${i}`;
          const grant = new provider.Grant({ accountId, clientId: client.clientId });
          grant.addOIDCScope('openid offline_access');
          grant.addResourceScope(JWT_RESOURCE, 'notes:read');
          const grantId = await grant.save();
          const refresh = new provider.RefreshToken({
            accountId,
            client,
            grantId,
            gty: 'authorization_code',
            scope: 'openid offline_access',
            resource: JWT_RESOURCE,
            authTime: Math.floor(Date.now() / 1000),
          });
          tokens.push(await refresh.save());
        }
        return tokens;
      };
      make().then(
        (tokens) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(tokens));
        },
        (err: unknown) => {
          res.writeHead(500);
          res.end(String(err));
        },
      );
    });
    control.listen(controlPort, '127.0.0.1');
    await once(control, 'listening');
  }
  process.once('SIGTERM', () => process.exit(0));
  process.once('SIGINT', () => process.exit(0));
  process.stdout.write('bare oidc-provider ready\n');
}

function mountedInKoa(provider: Provider): Koa {
  const handle = provider.callback();
  const outer = new Koa();
  outer.use(async (ctx) => {
    const req = ctx.req as typeof ctx.req & { originalUrl?: string };
    req.originalUrl = req.url;
    ctx.respond = false;
    await handle(ctx.req, ctx.res);
  });
  return outer;
}

main().catch((err: unknown) => {
  process.stderr.write(`bare oidc-provider failed: ${String(err instanceof Error ? err.stack : err)}\n`);
  process.exit(1);
});
