import type { LoginThrottle } from '../../accounts/login-throttle.ts';
import type { TotpService } from '../../accounts/totp-service.ts';

/** What the second-factor steps need beyond the password step's deps. */
export interface MfaDeps {
  totp: TotpService;
  /** The same per-name and per-address limits as passwords: wrong codes count against them. */
  throttle: LoginThrottle;
}
