import type Provider from 'oidc-provider';
import { InvalidRequestError } from '../errors/errors.ts';
import { OIDC_SCOPES, type TenantSettings } from '../tenants/tenant-settings.ts';
import { csrfField } from './csrf.ts';
import { finishInteraction, interactionPath, type InteractionDetails, type Step, type StepRequest } from './interaction-step.ts';
import { escapeHtml, httpsUrl, pageLook, renderPage } from './views.ts';

type Grant = InstanceType<Provider['Grant']>;

/** What the consent prompt asks for (oidc-provider's consent prompt details). */
interface ConsentAsked {
  missingOIDCScope?: string[];
  missingOIDCClaims?: string[];
  missingResourceScopes?: Record<string, string[]>;
}

function consentAsked(details: InteractionDetails): ConsentAsked {
  return details.prompt.details as ConsentAsked;
}

/** Words for the OpenID scopes when the tenant gives none (OIDC Core §5.4). */
const BUILT_IN_DESCRIPTIONS: Readonly<Record<string, string>> = {
  openid: 'Know who you are: sign you in with your account',
  profile: 'See your basic profile: name, username and picture',
  email: 'See your email address',
  offline_access: 'Keep access while you are away (a refresh token)',
};

/**
 * The words a person sees for a scope: the tenant's `consent.scopeDescriptions`, else the
 * built-in words for the OpenID scopes, else none (the page shows the bare name). The
 * consent page and the device confirmation page both use these.
 */
export function scopeDescription(settings: Pick<TenantSettings, 'consent'>, scope: string): string | undefined {
  // Own keys only: a scope named like an Object.prototype member ("constructor") has no words.
  if (Object.hasOwn(settings.consent.scopeDescriptions, scope)) return settings.consent.scopeDescriptions[scope];
  return Object.hasOwn(BUILT_IN_DESCRIPTIONS, scope) ? BUILT_IN_DESCRIPTIONS[scope] : undefined;
}

/** One scope on the page: a checkbox, unless required. */
interface ScopeChoice {
  scope: string;
  description: string | undefined;
  required: boolean;
  /** Pre-checked: new or already granted; a scope the user left out before starts unchecked. */
  checked: boolean;
}

/** One resource (RFC 8707 audience) the grant is for, with the scopes asked for it. */
interface ResourceChoice {
  uri: string;
  name: string | undefined;
  scopes: string[];
}

/**
 * Everything this consent decides, computed the same way for the page and for the answer,
 * so a posted form can only ever narrow it: OpenID scopes (requested and known to the
 * tenant, as oidc-provider counts them), and per resource the scopes oidc-provider found
 * missing plus those the existing grant already covers.
 */
interface ConsentOffer {
  oidcScopes: string[];
  resources: ResourceChoice[];
  choices: ScopeChoice[];
}

const words = (value: string | undefined): string[] => (value ?? '').split(' ').filter(Boolean);

function requestedResources(details: InteractionDetails): string[] {
  const resource = details.params.resource;
  return (Array.isArray(resource) ? resource : [resource]).filter((r): r is string => typeof r === 'string');
}

function consentOffer(details: InteractionDetails, settings: TenantSettings, grant: Grant | undefined): ConsentOffer {
  const requested = words(typeof details.params.scope === 'string' ? details.params.scope : undefined);
  const asked = consentAsked(details);
  const known = new Set<string>([...OIDC_SCOPES, ...settings.scopes]);
  const oidcScopes = [...new Set(requested.filter((s) => known.has(s)))];

  const indicators = new Set([...Object.keys(asked.missingResourceScopes ?? {}), ...requestedResources(details)]);
  const resources: ResourceChoice[] = [];
  for (const uri of indicators) {
    const configured = settings.resources.find((r) => r.uri === uri);
    if (!configured) continue;
    const encountered = new Set(words(grant?.getResourceScopeEncountered(uri)));
    const scopes = new Set([...(asked.missingResourceScopes?.[uri] ?? []), ...requested.filter((s) => encountered.has(s))]);
    resources.push({ uri, name: configured.name, scopes: requested.filter((s) => scopes.has(s)).filter((s, i, all) => all.indexOf(s) === i) });
  }

  const required = new Set(['openid', ...settings.consent.requiredScopes]);
  const rejectedBefore = new Set([...words(grant?.getRejectedOIDCScope()), ...resources.flatMap((r) => words(grant?.getRejectedResourceScope(r.uri)))]);
  const grantedBefore = new Set([...words(grant?.getOIDCScope()), ...resources.flatMap((r) => words(grant?.getResourceScope(r.uri)))]);
  const offered = [...new Set([...oidcScopes, ...resources.flatMap((r) => r.scopes)])];
  const choices = offered.map((scope) => ({
    scope,
    description: scopeDescription(settings, scope),
    required: required.has(scope),
    checked: required.has(scope) || grantedBefore.has(scope) || !rejectedBefore.has(scope),
  }));
  return { oidcScopes, resources, choices };
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
  const logo = typeof client?.logoUri === 'string' ? httpsUrl(client.logoUri) : undefined;
  return { name: client?.clientName ?? clientId, host, logo };
}

/** The grant this authorization already has (remembered or being built), if it is this user's for this client. */
async function existingGrant(provider: Provider, details: InteractionDetails): Promise<Grant | undefined> {
  const grant = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
  return grant && grant.accountId === details.session?.accountId && grant.clientId === details.params.client_id ? grant : undefined;
}

/** Marks a submitted picker: without it the form is taken as the page's pre-checked choice. */
const PICKER_FIELD = 'picker';

function scopeItem(choice: ScopeChoice, index: number): string {
  const id = `scope-${index}`;
  const name = `<code>${escapeHtml(choice.scope)}</code>`;
  const text = choice.description ? `${escapeHtml(choice.description)}<span class="scope-name">${name}</span>` : name;
  if (choice.required) {
    // A disabled checkbox is never submitted: the hidden field carries the (always granted) scope.
    return `<li><label for="${id}"><input type="checkbox" id="${id}" checked disabled><span>${text}<span class="required">Required</span></span></label>`
      + `<input type="hidden" name="scope" value="${escapeHtml(choice.scope)}"></li>`;
  }
  return `<li><label for="${id}"><input type="checkbox" id="${id}" name="scope" value="${escapeHtml(choice.scope)}"${choice.checked ? ' checked' : ''}><span>${text}</span></label></li>`;
}

function resourceItem(resource: ResourceChoice): string {
  const label = resource.name ? `<strong>${escapeHtml(resource.name)}</strong><br><code>${escapeHtml(resource.uri)}</code>` : `<code>${escapeHtml(resource.uri)}</code>`;
  const scopes = resource.scopes.length ? `<br>with ${resource.scopes.map((s) => `<code>${escapeHtml(s)}</code>`).join(', ')}` : '';
  return `<li>${label}${scopes}</li>`;
}

export async function renderConsentPage(step: StepRequest): Promise<void> {
  const { ctx, runtime, details } = step;
  const look = pageLook(runtime.tenantId, runtime.settings);
  const [client, grant] = await Promise.all([
    clientDisplay(runtime.provider, String(details.params.client_id ?? '')),
    existingGrant(runtime.provider, details),
  ]);
  const offer = consentOffer(details, runtime.settings, grant);
  const base = escapeHtml(interactionPath(runtime, details));
  const csrf = csrfField(runtime.csrfKey, details.uid);
  renderPage(ctx, look, 'Allow access?', `<h1>Allow access?</h1>
<div class="client">${client.logo ? `<img src="${escapeHtml(client.logo)}" alt="" width="48" height="48">` : ''}
<p><strong>${escapeHtml(client.name)}</strong>${client.host ? ` from <span class="host">${escapeHtml(client.host)}</span>` : ''} asks for access to your ${escapeHtml(look.name)} account.</p></div>
<form method="post" action="${base}/confirm">${csrf}<input type="hidden" name="${PICKER_FIELD}" value="1">
${offer.choices.length ? `<fieldset><legend>It may:</legend><ul class="choices">${offer.choices.map(scopeItem).join('')}</ul></fieldset>
<p>Uncheck anything you do not want to allow.</p>` : ''}
${offer.resources.length ? `<h2>For use with</h2><ul>${offer.resources.map(resourceItem).join('')}</ul>` : ''}
<div class="actions"><button type="submit">Allow</button><button class="secondary" type="submit" formaction="${base}/abort">Deny</button></div></form>`);
}

/** `value` without the given words (a space-separated scope string). */
function removeWords(value: string | undefined, remove: Set<string>): string | undefined {
  if (value === undefined) return undefined;
  return words(value).filter((w) => !remove.has(w)).join(' ');
}

/**
 * Records in the grant exactly what the user allowed out of the offer, and rejects the
 * rest: oidc-provider counts rejected scopes as answered, so the user is not asked again
 * for them (no consent loop) and tokens never carry them. A scope allowed now that was
 * rejected before leaves the rejected list.
 */
function applyChoice(grant: Grant, offer: ConsentOffer, allowed: Set<string>, claims: string[] | undefined): void {
  const decide = (scopes: string[]) => ({
    granted: scopes.filter((s) => allowed.has(s)),
    rejected: new Set(scopes.filter((s) => !allowed.has(s))),
  });
  const oidc = decide(offer.oidcScopes);
  if (oidc.granted.length) grant.addOIDCScope(oidc.granted.join(' '));
  if (oidc.rejected.size) grant.rejectOIDCScope([...oidc.rejected].join(' '));
  if (grant.openid?.scope !== undefined) grant.openid.scope = removeWords(grant.openid.scope, oidc.rejected);
  if (grant.rejected?.openid?.scope !== undefined) grant.rejected.openid.scope = removeWords(grant.rejected.openid.scope, new Set(oidc.granted));
  if (claims?.length) grant.addOIDCClaims(claims);

  for (const resource of offer.resources) {
    const { granted, rejected } = decide(resource.scopes);
    grant.addResourceScope(resource.uri, granted.join(' '));
    if (rejected.size) grant.rejectResourceScope(resource.uri, [...rejected].join(' '));
    const kept = grant.resources?.[resource.uri];
    if (grant.resources && kept !== undefined) grant.resources[resource.uri] = removeWords(kept, rejected) ?? '';
    const before = grant.rejected?.resources?.[resource.uri];
    if (grant.rejected?.resources && before !== undefined) grant.rejected.resources[resource.uri] = removeWords(before, new Set(granted)) ?? '';
  }
}

/** Saves the user's answer as oidc-provider's Grant: the one being built, or a new one. */
async function grantConsent(provider: Provider, settings: TenantSettings, details: InteractionDetails, form: URLSearchParams): Promise<string> {
  const accountId = details.session?.accountId;
  const clientId = details.params.client_id;
  if (!accountId || typeof clientId !== 'string') throw new InvalidRequestError('no signed-in user for this interaction');
  const grant = (await existingGrant(provider, details)) ?? new provider.Grant({ accountId, clientId });
  const offer = consentOffer(details, settings, grant);
  // Only what was offered, never more: a forged scope in the form is ignored; required ones
  // are always granted. A form without the picker (a client of this page that predates it)
  // accepts what the page pre-checks.
  const picked = form.has(PICKER_FIELD) ? new Set(form.getAll('scope')) : new Set(offer.choices.filter((c) => c.checked).map((c) => c.scope));
  const allowed = new Set(offer.choices.filter((c) => c.required || picked.has(c.scope)).map((c) => c.scope));
  applyChoice(grant, offer, allowed, consentAsked(details).missingOIDCClaims);
  return grant.save();
}

export const consentStep: Step = {
  async POST({ ctx, runtime, details, form }) {
    if (details.prompt.name !== 'consent') throw new InvalidRequestError('this interaction is not asking for consent');
    const grantId = await grantConsent(runtime.provider, runtime.settings, details, form);
    return finishInteraction(ctx, runtime.provider, { consent: { grantId } });
  },
};
