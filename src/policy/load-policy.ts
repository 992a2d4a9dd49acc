import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { PolicyHooks } from './hooks.ts';
import { defaultPolicyHooks } from './defaults.ts';

const HOOK_NAMES = Object.keys(defaultPolicyHooks) as (keyof PolicyHooks)[];

export class PolicyModuleError extends Error {
  readonly code = 'INVALID_POLICY_MODULE';
  constructor(message: string) {
    super(message);
    this.name = 'PolicyModuleError';
  }
}

/**
 * An operator's own hooks: a module (JS, or TS on Node 24) whose default export is an object
 * with any of the hook functions; the rest keep their defaults. Anything else in the module
 * is refused, so a typo in a hook name is an error at start-up, not a silent default.
 */
export async function loadPolicyHooks(modulePath: string | undefined): Promise<PolicyHooks> {
  if (!modulePath) return defaultPolicyHooks;
  let loaded: unknown;
  try {
    loaded = ((await import(pathToFileURL(resolve(modulePath)).href)) as { default?: unknown }).default;
  } catch (err) {
    throw new PolicyModuleError(`cannot load policy module ${modulePath}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof loaded !== 'object' || loaded === null) {
    throw new PolicyModuleError(`policy module ${modulePath} must export default an object of hook functions`);
  }
  const overrides: Partial<Record<keyof PolicyHooks, unknown>> = {};
  for (const [name, value] of Object.entries(loaded)) {
    if (!(HOOK_NAMES as string[]).includes(name)) {
      throw new PolicyModuleError(`policy module ${modulePath}: unknown hook "${name}" (known: ${HOOK_NAMES.join(', ')})`);
    }
    if (typeof value !== 'function') throw new PolicyModuleError(`policy module ${modulePath}: hook "${name}" must be a function`);
    overrides[name as keyof PolicyHooks] = value;
  }
  return { ...defaultPolicyHooks, ...(overrides as Partial<PolicyHooks>) };
}
