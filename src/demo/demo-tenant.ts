import { randomBytes } from 'node:crypto';
import { LoginTakenError } from '../accounts/user-store.ts';
import { hashClientSecret, isHashedClientSecret } from '../registration/client-secrets.ts';
import type { ModelStore } from '../storage/model-store.ts';
import type { TenantSettingsInput } from '../tenants/tenant-settings.ts';

export const DEMO_TENANT = 'demo';
export const DEMO_AGENT_CLIENT_ID = 'demo-agent';
export const DEMO_SERVICE_CLIENT_ID = 'demo-service';
export const DEMO_USER_LOGIN = 'demo';

/**
 * The demo tenant's resources, matching mcp-examples/: the notes MCP server (JWTs), the
 * reports API (opaque, introspection), the gateway MCP server and its downstream API.
 */
export const DEMO_TENANT_SETTINGS: TenantSettingsInput = {
  displayName: 'Castellan demo',
  scopes: ['notes:read', 'notes:write', 'reports:read'],
  // MCP clients work against a fresh `npm start`: open registration and any CIMD host that
  // passes the SSRF guard; the abuse limits stay at their defaults.
  registration: { mode: 'open' },
  clientIdMetadataDocuments: { enabled: true, hosts: { mode: 'any' } },
  // The device example (an IoT device / CLI) signs in with the RFC 8628 device grant.
  deviceFlow: { enabled: true },
  // The gateway example exchanges a user's token (RFC 8693) as demo-service for the downstream API.
  tokenExchange: {
    enabled: true,
    rules: [{ client: 'demo-service', audiences: ['http://localhost:3004/api'] }],
  },
  resources: [
    { uri: 'http://localhost:3001/mcp', name: 'Demo notes MCP server', scopes: ['notes:read', 'notes:write'], accessTokenFormat: 'jwt' },
    { uri: 'http://localhost:3002/api', name: 'Demo reports API', scopes: ['reports:read'], accessTokenFormat: 'opaque' },
    { uri: 'http://localhost:3003/mcp', name: 'Demo gateway MCP server', scopes: ['notes:read'], accessTokenFormat: 'jwt' },
    { uri: 'http://localhost:3004/api', name: 'Demo downstream API', scopes: ['notes:read'], accessTokenFormat: 'jwt' },
  ],
};

export interface DemoPorts {
  createTenant(input: { id: string; displayName: string; settings: Record<string, unknown> }): Promise<boolean>;
  /** The demo tenant's durable model store, where clients live. */
  clients: ModelStore;
  findUser(login: string): Promise<{ id: string } | undefined>;
  createUser(input: { login: string; password: string; claims: Record<string, unknown> }): Promise<{ id: string }>;
}

export interface DemoCredentials {
  tenant: string;
  agentClientId: string;
  serviceClientId: string;
  /** Known when this start generated it or was given it: the store keeps only its digest. */
  serviceClientSecret: string | undefined;
  userLogin: string;
  /** Known only when this start created the user or was given the password. */
  userPassword: string | undefined;
  createdTenant: boolean;
}

const secret = () => randomBytes(24).toString('base64url');

/**
 * Creates the demo tenant, its two clients and a user when missing. Secrets are generated
 * here (never in the code); CASTELLAN_DEMO_* settings pin them for scripts.
 */
export async function seedDemoTenant(
  ports: DemoPorts,
  options: { clientSecret?: string | undefined; userPassword?: string | undefined },
): Promise<DemoCredentials> {
  const createdTenant = await ports.createTenant({
    id: DEMO_TENANT,
    displayName: 'Castellan demo',
    settings: DEMO_TENANT_SETTINGS as Record<string, unknown>,
  });

  await ports.clients.upsert('Client', DEMO_AGENT_CLIENT_ID, {
    client_id: DEMO_AGENT_CLIENT_ID,
    client_name: 'Demo agent',
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
    response_types: ['code'],
    // RFC 8252 §7.3: loopback redirects match on any port.
    redirect_uris: ['http://127.0.0.1/callback', 'http://[::1]/callback', 'http://localhost/callback'],
  });

  const existingService = await ports.clients.find('Client', DEMO_SERVICE_CLIENT_ID);
  const existingSecret = typeof existingService?.client_secret === 'string' ? existingService.client_secret : undefined;
  // Stored as a digest (src/registration/client-secrets.ts), like every compared-only secret:
  // a later start knows the secret only when it is pinned (or was stored in plaintext before).
  const readable = existingSecret !== undefined && !isHashedClientSecret(existingSecret) ? existingSecret : undefined;
  const serviceClientSecret = options.clientSecret ?? readable ?? (existingSecret === undefined ? secret() : undefined);
  await ports.clients.upsert('Client', DEMO_SERVICE_CLIENT_ID, {
    client_id: DEMO_SERVICE_CLIENT_ID,
    client_secret: serviceClientSecret === undefined ? existingSecret : hashClientSecret(serviceClientSecret),
    client_name: 'Demo service',
    grant_types: ['client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  });

  // The password is set when the user is created; on later starts only a pinned one is known.
  let userPassword = options.userPassword;
  if (!(await ports.findUser(DEMO_USER_LOGIN))) {
    const candidate = userPassword ?? secret();
    try {
      await ports.createUser({
        login: DEMO_USER_LOGIN,
        password: candidate,
        claims: { name: 'Demo User', email: 'demo@example.com', email_verified: false },
      });
      userPassword = candidate;
    } catch (err) {
      // Another node seeding the same store at the same moment created it first.
      if (!(err instanceof LoginTakenError)) throw err;
    }
  }

  return {
    tenant: DEMO_TENANT,
    agentClientId: DEMO_AGENT_CLIENT_ID,
    serviceClientId: DEMO_SERVICE_CLIENT_ID,
    serviceClientSecret,
    userLogin: DEMO_USER_LOGIN,
    userPassword,
    createdTenant,
  };
}
