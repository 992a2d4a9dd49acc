import type { Step, StepRequest } from '../interaction-step.ts';

/** "Sign in with <IdP>" buttons for the login page; empty while the tenant has no upstream IdP. */
export function upstreamChoices(_step: StepRequest): string {
  return '';
}

/** The upstream-login steps of an interaction, by name. */
export const upstreamSteps: Record<string, Step> = {};
