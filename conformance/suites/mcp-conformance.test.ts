import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect } from 'vitest';
import { spawnManaged, type ManagedProcess } from '../../test/support/child-processes.ts';
import {
  inPool,
  listScenarios,
  readResults,
  runCli,
  verdict,
  type ConformanceCheck,
} from '../support/mcp-conformance.ts';
import { conformanceSuite } from '../support/scenario.ts';

/*
 * The MCP conformance package (@modelcontextprotocol/conformance). It cannot test an
 * authorization server, so it is used where it fits:
 * - client side: its authorization scenarios (each brings a mock MCP server and AS) with the
 *   example agent as the client under test (mcp-examples/agent/conformance-client.ts);
 * - server side: its server scenarios against each example MCP server, started in the
 *   unauthenticated loopback-only test mode (MCP_EXAMPLE_INSECURE_CONFORMANCE_MODE=1), which
 *   its scenarios need since they send no token.
 * Every scenario the package lists is one check; the ones that do not apply say why.
 */

const SUITE = 'mcp-conformance';
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const AGENT_CLIENT = join(ROOT, 'mcp-examples/agent/conformance-client.ts');
/** Scenarios run at once: each starts a mock server pair and a Node client (two cores). */
const CLIENT_CONCURRENCY = 3;
const SCENARIO_TIMEOUT_MS = 60_000;

const clientScenarios = listScenarios('client');
const serverScenarios = listScenarios('server');

/** Why a client scenario is not run with the agent, or undefined when it is. */
function clientScenarioSkip(name: string): string | undefined {
  if (name.startsWith('auth/') || name === 'initialize') return undefined;
  if (name.startsWith('elicitation')) return 'the example agent offers no elicitation (it declares no client capabilities)';
  if (name === 'sse-retry') return "needs a call to the package's own test tool while the server drops its SSE stream; the agent calls only the tools its user names (SSE resumption is the MCP SDK transport's)";
  return "calls the package's own test tool with arguments the scenario chooses; the example agent calls only the tools its user names, and is tested here as an OAuth client";
}

/** The scenarios that exercise only what every example MCP server offers. */
const SERVER_CORE = new Set(['server-initialize', 'ping', 'tools-list', 'dns-rebinding-protection']);

/** Why a server scenario does not apply to the example servers, or undefined when it does. */
function serverScenarioSkip(name: string): string | undefined {
  if (SERVER_CORE.has(name)) return undefined;
  if (name.startsWith('tools-call-')) return "calls the package's own test tool (test_*); the example server offers only its own tools";
  if (name === 'json-schema-2020-12') return "lists the package's own test tool (json_schema_2020_12_tool); the example server offers only its own tools";
  if (name.startsWith('prompts-')) return 'the example server offers no prompts';
  if (name.startsWith('resources-')) return 'the example server offers no resources';
  if (name.startsWith('logging-')) return 'the example server offers no logging capability';
  if (name.startsWith('completion-')) return 'the example server offers no completions (it has no prompts or resource templates)';
  if (name.startsWith('elicitation-')) return 'the example server makes no elicitation requests';
  if (name.startsWith('server-sse-')) return 'the example server is stateless with JSON responses: no sessions, no SSE streams';
  return undefined;
}

interface ExampleServer {
  /** The check name's prefix. */
  label: string;
  entry: string;
  /** What its main.ts needs set (secrets are unused in the unauthenticated test mode). */
  env: Record<string, string>;
  path: string;
}

const EXAMPLE_SERVERS: readonly ExampleServer[] = [
  { label: 'notes-server', entry: 'mcp-examples/notes-server/main.ts', env: {}, path: '/mcp' },
  { label: 'reports-server', entry: 'mcp-examples/reports-server/main.ts', env: { INTROSPECTION_CLIENT_SECRET: 'unused-in-test-mode' }, path: '/api' },
  { label: 'gateway', entry: 'mcp-examples/gateway/main.ts', env: { GATEWAY_CLIENT_SECRET: 'unused-in-test-mode', DOWNSTREAM_RESOURCE: 'http://127.0.0.1:9/api' }, path: '/mcp' },
];

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

function exampleEnv(port: number, extra: Record<string, string>): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PORT: String(port),
    HOST: '127.0.0.1',
    MCP_EXAMPLE_INSECURE_CONFORMANCE_MODE: '1',
    // Never contacted in the test mode (no token is checked): a closed loopback port.
    CASTELLAN_ISSUER: 'http://127.0.0.1:9/t/conformance',
    ...extra,
  };
}

/** The end of the package's console output, without its colour codes. */
function tail(output: string): string {
  return output.replace(/\x1b\[[0-9;]*m/g, '').slice(-3000);
}

const outputDir = mkdtempSync(join(tmpdir(), 'castellan-mcp-conformance-'));
const clientResults = new Map<string, { checks: ConformanceCheck[] | undefined; exitCode: number; output: string }>();
const serverResults = new Map<string, Map<string, ConformanceCheck[]>>();
const running: ManagedProcess[] = [];

beforeAll(async () => {
  const serverRuns = (async () => {
    for (const example of EXAMPLE_SERVERS) {
      const port = await freePort();
      const child = spawnManaged(process.execPath, [join(ROOT, example.entry)], { env: exampleEnv(port, example.env) });
      running.push(child);
      await child.firstLine(30_000);
      const dir = join(outputDir, 'server', example.label);
      const run = await runCli(['server', '--url', `http://localhost:${port}${example.path}`, '--suite', 'all', '-o', dir], 120_000);
      const results = readResults(dir, 'server-');
      if (results.size === 0) throw new Error(`the conformance server run wrote no results (exit ${run.exitCode}):\n${run.output.slice(-2000)}`);
      serverResults.set(example.label, results);
      await child.stop();
    }
  })();
  const clientRuns = inPool(clientScenarios.filter((s) => !clientScenarioSkip(s.name)), CLIENT_CONCURRENCY, async (scenario) => {
    const dir = join(outputDir, 'client', scenario.name.replace(/\W/g, '_'));
    const run = await runCli([
      'client', '--command', `${process.execPath} ${AGENT_CLIENT}`, '--scenario', scenario.name,
      '--timeout', String(SCENARIO_TIMEOUT_MS), '-o', dir,
    ], SCENARIO_TIMEOUT_MS + 30_000);
    clientResults.set(scenario.name, { checks: readResults(dir).get(scenario.name), exitCode: run.exitCode, output: run.output });
  });
  await Promise.all([serverRuns, clientRuns]);
}, 300_000);

afterAll(async () => {
  await Promise.all(running.map((child) => child.stop()));
  rmSync(outputDir, { recursive: true, force: true });
});

conformanceSuite(SUITE, (scenario) => {
  for (const listed of clientScenarios) {
    scenario(`agent: ${listed.name} [${listed.specVersions.join(', ')}]`, (context) => {
      const skip = clientScenarioSkip(listed.name);
      if (skip) return context.skip(skip);
      const result = clientResults.get(listed.name);
      if (!result) throw new Error('the scenario did not run');
      const problem = verdict(result.checks)
        // The package's own verdict too: its exit status also counts a client that crashed or hung.
        ?? (result.exitCode === 0 ? undefined : `the conformance run exited with status ${result.exitCode}`);
      if (problem) throw new Error(`${problem}\n\n${tail(result.output)}`);
    });
  }

  for (const example of EXAMPLE_SERVERS) {
    for (const listed of serverScenarios) {
      scenario(`${example.label}: ${listed.name}`, (context) => {
        const skip = serverScenarioSkip(listed.name);
        if (skip) return context.skip(skip);
        const problem = verdict(serverResults.get(example.label)?.get(listed.name));
        if (problem) throw new Error(problem);
      });
    }
  }

  scenario('test mode: refused off loopback', async () => {
    const child = spawnManaged(process.execPath, [join(ROOT, 'mcp-examples/notes-server/main.ts')], {
      env: { ...exampleEnv(await freePort(), {}), HOST: '0.0.0.0' },
    });
    running.push(child);
    const exit = await child.exited;
    expect(exit.code).toBe(1);
    expect(child.output()).toContain('allowed on loopback only');
  });
});
