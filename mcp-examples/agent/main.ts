import { envString } from '../shared/main.ts';
import { connectAgent, resultText } from './agent.ts';

/*
 * npm run example:agent                          the notes walk-through: list, add (step-up), list
 * npm run example:agent -- <tool> ['<json args>'] ...   call these tools in order
 */

const serverUrl = envString('MCP_SERVER_URL', 'http://localhost:3001/mcp');
const clientMetadataUrl = envString('AGENT_CLIENT_METADATA_URL', '');
const callbackPort = Number(envString('AGENT_CALLBACK_PORT', '0'));

/** [tool, args] pairs from the command line: a tool name, optionally followed by a JSON object. */
function callsFromArgs(args: readonly string[]): Array<[string, Record<string, unknown>]> {
  const calls: Array<[string, Record<string, unknown>]> = [];
  for (const arg of args) {
    const last = calls.at(-1);
    if (arg.startsWith('{') && last) last[1] = JSON.parse(arg) as Record<string, unknown>;
    else calls.push([arg, {}]);
  }
  return calls;
}

const NOTES_WALKTHROUGH: Array<[string, Record<string, unknown>]> = [
  ['list_notes', {}],
  ['add_note', { title: 'Hello from the agent', text: `written at ${new Date().toISOString()}` }],
  ['list_notes', {}],
];

async function main(): Promise<void> {
  const calls = process.argv.length > 2 ? callsFromArgs(process.argv.slice(2)) : NOTES_WALKTHROUGH;
  const agent = await connectAgent({
    serverUrl,
    ...(clientMetadataUrl ? { clientMetadataUrl } : {}),
    callbackPort,
    log: (line) => console.error(line),
  });
  try {
    console.error(`connected to ${serverUrl} as ${agent.clientId} with scopes: ${agent.grantedScopes.join(' ')}`);
    console.error(`tools: ${(await agent.listTools()).join(', ')}`);
    for (const [name, args] of calls) {
      const before = agent.authorizations;
      const result = await agent.callTool(name, args);
      if (agent.authorizations > before) console.error(`stepped up: scopes now ${agent.grantedScopes.join(' ')}`);
      console.log(`${name}${result.isError ? ' (error)' : ''}:\n${resultText(result)}\n`);
    }
  } finally {
    await agent.close();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
