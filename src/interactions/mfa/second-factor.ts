import type { User } from '../../accounts/accounts.ts';
import { finishInteraction, type Step, type StepRequest } from '../interaction-step.ts';

/**
 * Called once the password is right. Without a second factor the login is done; the TOTP
 * step (RFC 6238) hooks in here.
 */
export async function completePasswordLogin(step: StepRequest, user: Pick<User, 'id'>): Promise<void> {
  return finishInteraction(step.ctx, step.runtime.provider, { login: { accountId: user.id, amr: ['pwd'] } });
}

/** The second-factor steps of an interaction, by name. */
export const secondFactorSteps: Record<string, Step> = {};
