import { timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import OAuth2Server from '@node-oauth/oauth2-server';

/*
 * The lighter peer baseline: @node-oauth/oauth2-server with an in-memory model, the client
 * credentials grant, opaque bearer tokens, on plain node:http. POST /token only.
 */

const port = Number(process.env.PORT ?? '0');
const secret = process.env.BENCH_CLIENT_SECRET ?? 'bench-secret-bench-secret-bench-secret';
const client: OAuth2Server.Client = { id: 'bench-service', grants: ['client_credentials'], accessTokenLifetime: 600 };
const tokens = new Map<string, OAuth2Server.Token>();

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const model: OAuth2Server.ClientCredentialsModel = {
  getClient: async (clientId, clientSecret) => (clientId === client.id && sameSecret(clientSecret, secret) ? client : false),
  getUserFromClient: async () => ({ id: 'bench-service' }),
  saveToken: async (token, tokenClient, user) => {
    const saved = { ...token, client: tokenClient, user };
    tokens.set(token.accessToken, saved);
    return saved;
  },
  getAccessToken: async (accessToken) => tokens.get(accessToken) ?? false,
  validateScope: async (_user, _client, scope) => scope ?? ['reports:read'],
};

const oauth = new OAuth2Server({ model, accessTokenLifetime: 600 });

async function readForm(req: IncomingMessage): Promise<Record<string, string>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
}

const server = createServer((req, res) => {
  const handle = async () => {
    if (req.method !== 'POST' || req.url !== '/token') {
      res.writeHead(req.url === '/' ? 200 : 404);
      res.end();
      return;
    }
    const request = new OAuth2Server.Request({
      headers: req.headers as Record<string, string>,
      method: req.method,
      query: {},
      body: await readForm(req),
    });
    const response = new OAuth2Server.Response();
    try {
      await oauth.token(request, response);
    } catch (err) {
      const status = err instanceof OAuth2Server.OAuthError ? err.code : 500;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: err instanceof Error ? err.name : 'server_error' }));
      return;
    }
    res.writeHead(response.status ?? 200, { ...response.headers, 'content-type': 'application/json' });
    res.end(JSON.stringify(response.body));
  };
  handle().catch(() => {
    res.writeHead(500);
    res.end();
  });
});
server.listen(port, '127.0.0.1');
await once(server, 'listening');
process.once('SIGTERM', () => process.exit(0));
process.once('SIGINT', () => process.exit(0));
process.stdout.write('oauth2-server ready\n');
