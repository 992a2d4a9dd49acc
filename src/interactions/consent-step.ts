import type Provider from 'oidc-provider';
import { InvalidRequestError } from '../errors/errors.ts';
import { csrfField } from './csrf.ts';
import { finishInteraction, interactionPath, type InteractionDetails, type Step, type StepRequest } from './interaction-step.ts';
import { escapeHtml, pageLook, renderPage } from './views.ts';

/** What the consent prompt asks for (oidc-provider's consent prompt details). */
interface ConsentAsked {
  missingOIDCScope?: string[];
  missingOIDCClaims?: string[];
  missingResourceScopes?: Record<string, string[]>;
}

function consentAsked(details: InteractionDetails): ConsentAsked {
  return details.prompt.details as ConsentAsked;
}

interface ClientDisplay {
  name: string;
  /** For a URL client_id (CIMD) the host that vouches for it, shown prominently. */
  host: string | undefined;
  logo: string | undefined;
}

/** What the consent page may show of a client: only https logos, never an unchecked URL. */
async function clientDisplay(provider: Provider, clientId: string): Promise<ClientDisplay> {
  const client = await provider.Client.find(clientId);
  const url = URL.parse(clientId);
  const host = url?.protocol === 'https:' ? url.host : undefined;
  const logo = typeof client?.logoUri === 'string' && URL.parse(client.logoUri)?.protocol === 'https:' ? client.logoUri : undefined;
  return { name: client?.clientName ?? clientId, host, logo };
}

export async function renderConsentPage(step: StepRequest): Promise<void> {
  const { ctx, runtime, details } = step;
  const client = await clientDisplay(runtime.provider, String(details.params.client_id ?? ''));
  const asked = consentAsked(details);
  const scopes = [...(asked.missingOIDCScope ?? [])];
  const resources = Object.entries(asked.missingResourceScopes ?? {});
  const base = escapeHtml(interactionPath(runtime, details));
  renderPage(ctx, pageLook(runtime.tenantId, runtime.settings), 'Allow access?', `<h1>Allow access?</h1>
${client.logo ? `<img src="${escapeHtml(client.logo)}" alt="" width="48" height="48">` : ''}
<p>The application <strong>${escapeHtml(client.name)}</strong>${client.host ? ` from <span class="host">${escapeHtml(client.host)}</span>` : ''} asks to:</p>
<ul>${scopes.map((s) => `<li>${escapeHtml(s)}</li>`).join('')}
${resources.map(([uri, s]) => `<li>use ${escapeHtml(uri)}${s.length ? ` with ${s.map(escapeHtml).join(', ')}` : ''}</li>`).join('')}</ul>
<form method="post" action="${base}/confirm">${csrfField(runtime.csrfKey, details.uid)}<button type="submit">Allow</button></form>
<form method="post" action="${base}/abort">${csrfField(runtime.csrfKey, details.uid)}<button class="secondary" type="submit">Deny</button></form>`);
}

/** Records consent for exactly what the interaction asked (oidc-provider's Grant model). */
async function grantConsent(provider: Provider, details: InteractionDetails): Promise<string> {
  const accountId = details.session?.accountId;
  const clientId = details.params.client_id;
  if (!accountId || typeof clientId !== 'string') throw new InvalidRequestError('no signed-in user for this interaction');
  const grant = details.grantId
    ? (await provider.Grant.find(details.grantId)) ?? new provider.Grant({ accountId, clientId })
    : new provider.Grant({ accountId, clientId });
  const d = consentAsked(details);
  if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
  if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(d.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  return grant.save();
}

export const consentStep: Step = {
  async POST({ ctx, runtime, details }) {
    if (details.prompt.name !== 'consent') throw new InvalidRequestError('this interaction is not asking for consent');
    const grantId = await grantConsent(runtime.provider, details);
    return finishInteraction(ctx, runtime.provider, { consent: { grantId } });
  },
};
