import { loadSettings, SettingsError } from './config/settings.ts';
import { createLogger } from './observability/logger.ts';
import { startCastellan } from './server.ts';
import { ADMIN_API_PATH, adminResourceUri } from './admin/services/system-tenant.ts';

/** `npm start`: validated settings, then a listening server and where to go. */
async function main(): Promise<void> {
  let settings;
  try {
    settings = loadSettings();
  } catch (err) {
    if (err instanceof SettingsError) {
      process.stderr.write(`Castellan cannot start: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(settings.logLevel);
  if (settings.storage === 'memory') {
    log.warn('no MONGODB_URL: running on the embedded in-memory store; all state (tenants, clients, tokens, keys) is lost on restart');
  }
  const running = await startCastellan(settings, log);
  const base = settings.baseUrl;
  const lines = [
    '',
    `Castellan is listening on ${running.url} (issuer base ${base}, storage: ${settings.storage})`,
  ];
  if (running.demo) {
    const d = running.demo;
    const secret = d.serviceClientSecret ?? '(set on first start; CASTELLAN_DEMO_CLIENT_SECRET pins it)';
    lines.push(
      '',
      `Demo tenant "${d.tenant}":`,
      `  issuer:               ${base}/t/${d.tenant}`,
      `  metadata (RFC 8414):  ${base}/.well-known/oauth-authorization-server/t/${d.tenant}`,
      `  OIDC discovery:       ${base}/.well-known/openid-configuration/t/${d.tenant}`,
      `  registration:         ${base}/t/${d.tenant}/reg (open: RFC 7591; https URL client_ids: CIMD)`,
      `  device sign-in:       ${base}/t/${d.tenant}/device`,
      `  public client:        ${d.agentClientId} (auth code + PKCE, redirect http://127.0.0.1:<any port>/callback)`,
      `  confidential client:  ${d.serviceClientId} / secret ${secret}`,
      `  user:                 ${d.userLogin} / ${d.userPassword ?? '(set on first start; CASTELLAN_DEMO_USER_PASSWORD pins it)'}`,
      '',
      'Try it:',
      `  curl -s -u ${d.serviceClientId}:${d.serviceClientSecret ?? '$SECRET'} -d grant_type=client_credentials \\`,
      `    -d resource=http://localhost:3001/mcp -d scope=notes:read ${base}/t/${d.tenant}/token`,
      '',
    );
  }
  if (running.adminClient) {
    const { clientId, clientSecret } = running.adminClient;
    lines.push(
      `Admin API (in-memory run: this client lives as long as the process):`,
      `  ${base}${ADMIN_API_PATH}/openapi.json`,
      `  admin client: ${clientId} / secret ${clientSecret}`,
      `  token: curl -s -u ${clientId}:${clientSecret} -d grant_type=client_credentials \\`,
      `    -d resource=${adminResourceUri(base)} -d "scope=admin:read admin:write" ${base}/t/${settings.systemTenant}/token`,
      '',
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);

  // SIGTERM (Kubernetes, docker stop) or SIGINT: /readyz turns 503, the listener stops
  // accepting, requests in flight get up to CASTELLAN_SHUTDOWN_DRAIN_SECONDS to finish, the
  // stores close, exit 0. A second signal exits at once.
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting without waiting for the drain');
      process.exit(1);
    }
    stopping = true;
    const drainMs = settings.shutdownDrainSeconds * 1000;
    log.info({ signal, drainMs }, 'shutting down: draining requests in flight');
    running.close({ drainMs }).then(() => {
      log.info('shut down');
      process.exit(0);
    }, (err: unknown) => {
      log.error({ err }, 'error while shutting down');
      process.exit(1);
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err: unknown) => {
  process.stderr.write(`Castellan failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
