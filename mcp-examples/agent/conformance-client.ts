import { ClientCredentialsProvider, PrivateKeyJwtProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import type { OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import { z } from 'zod';
import { connectAgent, type AgentOptions } from './agent.ts';
import { CrossAppAccessProvider } from './cross-app-access.ts';

/*
 * The example agent as the client under test of the MCP conformance package
 * (@modelcontextprotocol/conformance `client --command`). The package starts a mock MCP server
 * and authorization server per scenario, then runs
 *
 *   <command> <server-url>     with MCP_CONFORMANCE_SCENARIO=<name>
 *                              and, for some scenarios, MCP_CONFORMANCE_CONTEXT=<JSON>
 *
 * and judges what the client did. This entry point runs the agent's own connect logic and
 * OAuth provider; it only adds what a scenario hands over (pre-registered or machine
 * credentials, an IdP token) and a headless "user" who approves at the mock AS (which asks
 * nothing: its authorization endpoint redirects at once). Exit status 0 when the agent got
 * through (connected, listed the tools, called the scenario's test tool), 1 otherwise.
 */

/** The URL-based client_id the package's CIMD scenario expects (its mock AS does not fetch it). */
const CONFORMANCE_CLIENT_METADATA_URL = 'https://conformance-test.local/client-metadata.json';

const contextSchema = z.discriminatedUnion('name', [
  z.object({ name: z.literal('auth/client-credentials-basic'), client_id: z.string().min(1), client_secret: z.string().min(1) }),
  z.object({
    name: z.literal('auth/client-credentials-jwt'),
    client_id: z.string().min(1),
    private_key_pem: z.string().min(1),
    signing_algorithm: z.string().min(1).optional(),
  }),
  z.object({ name: z.literal('auth/pre-registration'), client_id: z.string().min(1), client_secret: z.string().min(1) }),
  z.object({
    name: z.literal('auth/cross-app-access-complete-flow'),
    client_id: z.string().min(1),
    client_secret: z.string().min(1),
    idp_client_id: z.string().min(1),
    idp_id_token: z.string().min(1),
    idp_token_endpoint: z.url(),
  }),
]);

type ScenarioContext = z.infer<typeof contextSchema>;

/** What the scenario's context means for the agent: credentials it holds, or a machine grant. */
function authOptionsFor(context: ScenarioContext | undefined): Partial<AgentOptions> {
  if (!context) return { clientMetadataUrl: CONFORMANCE_CLIENT_METADATA_URL };
  let machineAuth: OAuthClientProvider;
  switch (context.name) {
    case 'auth/pre-registration':
      return { clientInformation: { client_id: context.client_id, client_secret: context.client_secret } };
    case 'auth/client-credentials-basic':
      machineAuth = new ClientCredentialsProvider({ clientId: context.client_id, clientSecret: context.client_secret, clientName: 'Castellan example agent' });
      break;
    case 'auth/client-credentials-jwt':
      machineAuth = new PrivateKeyJwtProvider({
        clientId: context.client_id,
        privateKey: context.private_key_pem,
        algorithm: context.signing_algorithm ?? 'ES256',
        clientName: 'Castellan example agent',
      });
      break;
    case 'auth/cross-app-access-complete-flow':
      machineAuth = new CrossAppAccessProvider({
        idpTokenEndpoint: context.idp_token_endpoint,
        idpClientId: context.idp_client_id,
        idToken: context.idp_id_token,
        clientId: context.client_id,
        clientSecret: context.client_secret,
      });
      break;
  }
  return { machineAuth };
}

/** The user, headless: opens the authorization URL and follows its redirect to the agent's callback. */
async function approveHeadlessly(url: URL): Promise<void> {
  const response = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(10_000) });
  const location = response.headers.get('location');
  if (response.status < 300 || response.status >= 400 || !location) {
    throw new Error(`the authorization endpoint answered ${response.status} without a redirect`);
  }
  await fetch(new URL(location, url), { signal: AbortSignal.timeout(10_000) });
}

async function main(): Promise<void> {
  const serverUrl = process.argv[2];
  if (!serverUrl) throw new Error('usage: conformance-client.ts <server-url> (run by @modelcontextprotocol/conformance)');
  const rawContext = process.env.MCP_CONFORMANCE_CONTEXT;
  const context = rawContext ? contextSchema.parse(JSON.parse(rawContext)) : undefined;
  const agent = await connectAgent({
    serverUrl,
    clientName: 'Castellan example agent',
    onAuthorizationUrl: approveHeadlessly,
    authorizationTimeoutMs: 15_000,
    log: (line) => console.error(line),
    ...authOptionsFor(context),
  });
  try {
    const tools = await agent.listTools();
    console.error(`${process.env.MCP_CONFORMANCE_SCENARIO ?? 'scenario'}: connected as ${agent.clientId ?? '(no client id)'}; tools: ${tools.join(', ')}`);
    if (tools.includes('test-tool')) await agent.callTool('test-tool');
  } finally {
    await agent.close();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
