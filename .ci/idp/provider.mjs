// A local OpenID Provider for sheepcrm-mcp's OAuth resource-server tests and demos, built on the
// certified `oidc-provider` package. Test use only: in-memory storage, generated keys, http.
//
//   node provider.mjs [--port N]          (or IDP_PORT=N; 0 or unset = a free port)
//
// On start it prints one JSON line to stdout: {"ready": true, "issuer": ..., "port": ...}
// (tests wait for it), logs to stderr, and serves until SIGTERM/SIGINT.
//
// Environment (all optional):
//   IDP_PORT              port on 127.0.0.1 (also --port N / first positional arg); default 0 (free port)
//   IDP_RESOURCES         comma list of accepted RFC 8707 resource indicators; '*' globs one or more
//                         characters, e.g. "http://127.0.0.1:*/mcp". Default below.
//   IDP_DEFAULT_RESOURCE  resource used when a request names none (default: none -> opaque
//                         userinfo-only access token, oidc-provider's own behaviour)
//   IDP_SCOPES            space list of resource scopes the resource server accepts (default "sheepcrm sheepcrm:write")
//   IDP_ROLES_CLAIM       name of the roles claim (default "roles")
//   IDP_AT_TTL            access token lifetime in seconds (default 300)
//   IDP_ACCOUNTS_FILE     JSON file replacing the built-in accounts (same shape as ACCOUNTS below)
//   IDP_KEYS_FILE         JSON file {"keys": [private JWKs]} to sign with instead of a fresh RSA key
//   IDP_DEFAULT_SCOPE     scope used when an authorization request has none (default "sheepcrm";
//                         oidc-provider itself answers such a request with access_denied)
//   IDP_SERVICE_SECRET    client_secret of the client_credentials test client (default below)
//   IDP_PAGE_SECRET       client_secret of the approval page's client, sheepcrm-approvals (default below)
//   IDP_OPAQUE_RESOURCES  comma list (globs as IDP_RESOURCES) of resources whose access tokens are opaque
//                         reference tokens, checked by RFC 7662 introspection (/token/introspection)
//   IDP_ENTRA_TENANT      a tenant id: issue tokens shaped like Microsoft Entra ID's. The issuer becomes
//                         <origin>/<tenant>/v2.0 (the v2 form); access tokens are `typ: JWT` with `scp`,
//                         `oid`, `tid`, `ver`, `azp`, a `sub` that differs per client, no `email_verified`
//                         but `xms_edov`; ID tokens carry `oid` and `tid`; there are no pushed authorization
//                         requests. Tokens for the client sheepcrm-test-v1 have the v1 issuer form
//                         <origin>/sts/<tenant>/ and `appid`. The account `outsider` belongs to
//                         IDP_ENTRA_OTHER_TENANT (default below): its tokens name that tenant.
//   IDP_ENTRA_APP_ID      the API's client id: v2 tokens for a resource in IDP_ENTRA_APP_URIS (globs;
//                         default every resource) name it in `aud`, as Entra's v2 tokens do
import crypto from 'node:crypto';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const { values: opts, positionals } = parseArgs({
  options: { port: { type: 'string' } },
  allowPositionals: true,
});
const env = process.env;
const PORT = Number(opts.port ?? positionals[0] ?? env.IDP_PORT ?? 0);
const RESOURCES = (env.IDP_RESOURCES
  ?? 'http://127.0.0.1:8765/mcp,http://127.0.0.1:*,http://localhost:*')
  .split(',').map((s) => s.trim()).filter(Boolean);
const DEFAULT_RESOURCE = env.IDP_DEFAULT_RESOURCE || undefined;
const SCOPES = (env.IDP_SCOPES ?? 'sheepcrm sheepcrm:write').split(/\s+/).filter(Boolean);
const ROLES_CLAIM = env.IDP_ROLES_CLAIM || 'roles';
const AT_TTL = Number(env.IDP_AT_TTL ?? 300);
const DEFAULT_SCOPE = env.IDP_DEFAULT_SCOPE ?? 'sheepcrm';
const SERVICE_SECRET = env.IDP_SERVICE_SECRET ?? 'sheepcrm-service-secret-for-tests-only';
const PAGE_SECRET = env.IDP_PAGE_SECRET ?? 'sheepcrm-approvals-secret-for-tests-only';
const OPAQUE = (env.IDP_OPAQUE_RESOURCES ?? '').split(',').map((s) => s.trim()).filter(Boolean);
const ENTRA = env.IDP_ENTRA_TENANT || '';
const ENTRA_OTHER = env.IDP_ENTRA_OTHER_TENANT || '0b0b0b0b-0000-4000-8000-0000000000ff';
const ENTRA_APP_ID = env.IDP_ENTRA_APP_ID || '';
const ENTRA_APP_URIS = (env.IDP_ENTRA_APP_URIS ?? '*').split(',').map((s) => s.trim()).filter(Boolean);
const ENTRA_V1_CLIENT = 'sheepcrm-test-v1';
const PREFIX = ENTRA ? `/${ENTRA}/v2.0` : ''; // Entra's v2 issuer has a path: the provider is mounted under it

// username -> account. `password` is checked by the login form; `sub` is the OIDC subject.
const ACCOUNTS = env.IDP_ACCOUNTS_FILE ? JSON.parse(readFileSync(env.IDP_ACCOUNTS_FILE, 'utf8')) : {
  staff: {
    sub: 'u-staff', password: 'staff-pw', name: 'Sam Staff',
    email: 'staff@sheepcrm.test', email_verified: true, roles: ['staff'],
  },
  helpdesk: {
    sub: 'u-helpdesk', password: 'helpdesk-pw', name: 'Hana Helpdesk',
    email: 'helpdesk@sheepcrm.test', email_verified: true, roles: ['helpdesk'],
  },
  // The member accounts' emails are those of people in the sandbox's seeded demo bucket.
  member: {
    sub: 'u-member', password: 'member-pw', name: 'Jane Austen',
    email: 'jane.austen@example.org', email_verified: true, roles: ['member'],
  },
  unverified: {
    sub: 'u-unverified', password: 'unverified-pw', name: 'Charles Dickens',
    email: 'charles.dickens@example.org', email_verified: false, roles: ['member'],
  },
  // Two people sharing one (verified) mailbox: email is not an identity key.
  'shared-a': {
    sub: 'u-shared-a', password: 'shared-a-pw', name: 'Emily Bronte',
    email: 'bronte.family@example.org', email_verified: true, roles: ['member'],
  },
  'shared-b': {
    sub: 'u-shared-b', password: 'shared-b-pw', name: 'Anne Bronte',
    email: 'bronte.family@example.org', email_verified: true, roles: ['member'],
  },
  stranger: {
    sub: 'u-stranger', password: 'stranger-pw', name: 'Nobody Known',
    email: 'nobody@example.invalid', email_verified: true, roles: ['member'],
  },
  norole: {
    sub: 'u-norole', password: 'norole-pw', name: 'No Role',
    email: 'norole@sheepcrm.test', email_verified: true, roles: [],
  },
};
if (ENTRA && !env.IDP_ACCOUNTS_FILE) {
  // Another tenant's user with a member's (verified) email: Entra signs every tenant's tokens with the same keys.
  ACCOUNTS.outsider = {
    sub: 'u-outsider', password: 'outsider-pw', name: 'Jane Austen (elsewhere)',
    email: 'jane.austen@example.org', email_verified: true, roles: ['member'], tid: ENTRA_OTHER,
  };
}
const BY_SUB = new Map(Object.entries(ACCOUNTS).map(([username, a]) => [a.sub, { username, ...a }]));

function globMatch(pattern, value) {
  const re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.+')}$`);
  return re.test(value);
}
const resourceAllowed = (r) => RESOURCES.some((p) => globMatch(p, r));

function signingKeys() {
  if (env.IDP_KEYS_FILE) return JSON.parse(readFileSync(env.IDP_KEYS_FILE, 'utf8')).keys;
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return [{ ...jwk, kid: `test-${crypto.randomBytes(4).toString('hex')}`, use: 'sig', alg: 'RS256' }];
}

// Entra's object id: one per person and tenant, the same for every application (a uuid-shaped digest here).
function oidOf(account) {
  const h = crypto.createHash('sha256').update(`oid:${account.sub}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function userClaims(account) {
  const claims = {
    sub: account.sub,
    name: account.name,
    preferred_username: account.username,
    email: account.email,
    email_verified: account.email_verified,
    [ROLES_CLAIM]: account.roles ?? [],
  };
  if (ENTRA) {
    // Entra sends no email_verified; `xms_edov` (optional claim) says the email's domain owner is verified.
    delete claims.email_verified;
    Object.assign(claims, { oid: oidOf(account), tid: account.tid ?? ENTRA, xms_edov: Boolean(account.email_verified) });
  }
  return claims;
}

// An access token as Entra ID shapes it (typ JWT, scp, oid, tid, ver, issuer and audience forms).
function entraAccessToken(token, jwt) {
  const p = jwt.payload;
  const account = token.accountId ? BY_SUB.get(token.accountId) : undefined;
  const v1 = p.client_id === ENTRA_V1_CLIENT;
  const tenant = account?.tid ?? ENTRA;
  const resource = Array.isArray(p.aud) ? p.aud[0] : p.aud;
  jwt.header = { typ: 'JWT' };
  p.iss = v1 ? `${ORIGIN}/sts/${tenant}/` : `${ORIGIN}/${tenant}/v2.0`;
  p.ver = v1 ? '1.0' : '2.0';
  if (!v1 && ENTRA_APP_ID && ENTRA_APP_URIS.some((u) => globMatch(u, resource))) p.aud = ENTRA_APP_ID;
  if (p.scope) p.scp = p.scope;
  delete p.scope;
  p[v1 ? 'appid' : 'azp'] = p.client_id;
  delete p.client_id;
  // Entra's `sub` is pairwise: different for each application. `oid` names the person.
  p.sub = crypto.createHash('sha256').update(`${p.sub}:${token.clientId}`).digest('base64url').slice(0, 43);
  if (account) {
    const { email, oid, tid, xms_edov, [ROLES_CLAIM]: roles } = userClaims(account);
    delete p.email_verified;
    Object.assign(p, { email, oid, tid, xms_edov, [ROLES_CLAIM]: roles });
  } else {
    p.tid = ENTRA;
  }
}

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(uid, clientId, error) {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - sheepCRM test IdP</title></head>
<body>
  <h1>Sign in</h1>
  <p>to continue to <code>${esc(clientId)}</code></p>
  ${error ? `<p id="error" role="alert">${esc(error)}</p>` : ''}
  <form id="login-form" method="post" action="${PREFIX}/interaction/${esc(uid)}/login" autocomplete="off">
    <label>Username <input id="username" name="username" type="text" required autofocus></label>
    <label>Password <input id="password" name="password" type="password" required></label>
    <button id="submit" type="submit">Sign in</button>
  </form>
  <form method="post" action="${PREFIX}/interaction/${esc(uid)}/abort"><button id="cancel" type="submit">Cancel</button></form>
</body></html>`;
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 16384) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

const listener = http.createServer();
await new Promise((resolve) => listener.listen(PORT, '127.0.0.1', resolve));
const port = listener.address().port;
const ORIGIN = `http://127.0.0.1:${port}`;
const ISSUER = `${ORIGIN}${PREFIX}`;

const configuration = {
  clients: [
    {
      // Public (PKCE) client for browser and scripted logins; native => any loopback port.
      client_id: 'sheepcrm-test',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback', 'http://localhost/callback'],
    },
    ...(ENTRA ? [{
      // With IDP_ENTRA_TENANT: a client whose access tokens have Entra's v1 form.
      client_id: ENTRA_V1_CLIENT,
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback', 'http://localhost/callback'],
    }] : []),
    {
      // The hosted server's approval page (SHEEPCRM_OAUTH_CLIENT_ID): a confidential web client that
      // signs people in with code + PKCE; native => its loopback redirect may use any port.
      client_id: 'sheepcrm-approvals',
      client_secret: PAGE_SECRET,
      application_type: 'native',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/approve/callback'],
      require_auth_time: true,
      // Only pushed authorization requests (RFC 9126): a browser cannot alter or replace the page's
      // sign-in request (drop prompt=login), as docs/HOSTING.md advises for every provider that can.
      // Entra has none.
      require_pushed_authorization_requests: !ENTRA,
    },
    {
      // Confidential machine client: client_credentials, no user (sub = client_id).
      client_id: 'sheepcrm-service',
      client_secret: SERVICE_SECRET,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      // no `scope` here: client metadata may only name the AS's OIDC `scopes`, not resource scopes
    },
  ],
  // ID tokens carry the claims of the granted scopes (email, name, roles), as Entra's and Keycloak's
  // do, not only through userinfo: the approval page reads who signed in from the ID token.
  conformIdTokenClaims: false,
  jwks: { keys: signingKeys() },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  // OAuth 2.1: PKCE (S256, the only method oidc-provider 9 supports) for every client.
  pkce: { required: () => true },
  responseTypes: ['code'], // OAuth 2.1: no implicit / hybrid
  // The resource scopes are listed too: MCP clients send `scope` (taken from the resource's
  // RFC 9728 scopes_supported) in their RFC 7591 registration, and oidc-provider refuses
  // client metadata naming a scope missing here ("scope must only contain Authorization
  // Server supported scope values"). Tokens still carry them only for the resource.
  scopes: ['openid', 'offline_access', 'email', 'profile', 'roles', ...SCOPES],
  claims: {
    openid: ENTRA ? ['sub', 'oid', 'tid'] : ['sub'],
    email: ENTRA ? ['email', 'xms_edov'] : ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    roles: [ROLES_CLAIM],
  },
  async findAccount(ctx, sub) {
    const account = BY_SUB.get(sub);
    if (!account) return undefined;
    return { accountId: sub, claims: async () => userClaims(account) };
  },
  // JWT access tokens carry the user's email, email_verified and roles (RFC 9068 allows
  // extra claims); client_credentials tokens carry none of them.
  async extraTokenClaims(ctx, token) {
    if (!token.accountId) return undefined;
    const account = BY_SUB.get(token.accountId);
    if (!account) return undefined;
    const { email, email_verified, [ROLES_CLAIM]: roles } = userClaims(account);
    return { email, email_verified, [ROLES_CLAIM]: roles };
  },
  formats: {
    customizers: {
      async jwt(ctx, token, jwt) {
        if (ENTRA) entraAccessToken(token, jwt);
      },
    },
  },
  // Refresh tokens for every client allowed the refresh_token grant (MCP clients refresh), not
  // only when `offline_access` + prompt=consent was asked for (oidc-provider's default).
  // Public clients' refresh tokens rotate on use (rotateRefreshToken default).
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  // oidc-provider's stock error / logout pages @import Google Fonts: an outbound request a
  // sandboxed browser must not make (and may stall on). Plain pages instead.
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Error</title></head><body>
<h1>Error</h1>${Object.entries(out).map(([k, v]) => `<p id="${esc(k)}"><b>${esc(k)}</b>: ${esc(v)}</p>`).join('')}</body></html>`;
  },
  features: {
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        ctx.body = `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Sign out</title></head><body>
${form}<button id="logout" type="submit" form="op.logoutForm" value="yes" name="logout">Sign out</button></body></html>`;
      },
      async postLogoutSuccessSource(ctx) {
        ctx.body = '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Signed out</title></head><body><h1 id="signed-out">Signed out</h1></body></html>';
      },
    },
    devInteractions: { enabled: false }, // our own login form below
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    pushedAuthorizationRequests: { enabled: !ENTRA },
    revocation: { enabled: true },
    registration: { enabled: true }, // RFC 7591 DCR, as MCP clients use it
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, client, oneOf) => oneOf ?? DEFAULT_RESOURCE,
      // Token requests without `resource` get a token for the resource granted at /auth.
      useGrantedResource: async () => true,
      async getResourceServerInfo(ctx, resourceIndicator) {
        if (!resourceAllowed(resourceIndicator)) throw new errors.InvalidTarget();
        return {
          scope: SCOPES.join(' '),
          audience: resourceIndicator,
          accessTokenTTL: AT_TTL,
          accessTokenFormat: OPAQUE.some((p) => globMatch(p, resourceIndicator)) ? 'opaque' : 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  interactions: { url: (ctx, interaction) => `${PREFIX}/interaction/${interaction.uid}` },
  ttl: {
    AccessToken: AT_TTL,
    ClientCredentials: AT_TTL,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 86400,
    Interaction: 600,
    Session: 3600,
    Grant: 86400,
  },
};

const provider = new Provider(ISSUER, configuration);

// OAuth lets a client omit `scope` (MCP clients do when the resource advertises none);
// oidc-provider would then answer access_denied ("no scope was granted"). Default it.
provider.use(async (ctx, next) => {
  if (DEFAULT_SCOPE && ctx.method === 'GET' && ctx.path === '/auth' && !ctx.query.scope) {
    ctx.query = { ...ctx.query, scope: DEFAULT_SCOPE };
  }
  return next();
});

// Login + automatic consent. Routes: GET /interaction/:uid, POST /interaction/:uid/login,
// POST /interaction/:uid/abort. The consent prompt is granted without a page (first-party tests).
provider.use(async (ctx, next) => {
  const m = /^\/interaction\/([\w-]+)(?:\/(login|abort))?$/.exec(ctx.path);
  if (!m) return next();
  const [, , action] = m;
  ctx.set('cache-control', 'no-store');
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { uid, prompt, params, session, grantId } = details;

  if (ctx.method === 'GET' && !action) {
    if (prompt.name === 'login') {
      ctx.type = 'html';
      ctx.body = loginPage(uid, params.client_id);
      return undefined;
    }
    if (prompt.name === 'consent') {
      const grant = grantId
        ? await provider.Grant.find(grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      const d = prompt.details;
      if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
      if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(d.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      const result = { consent: { grantId: await grant.save() } };
      return provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
    }
    ctx.throw(501, `prompt ${prompt.name} not implemented`);
  }

  if (ctx.method === 'POST' && action === 'login') {
    const form = await readForm(ctx.req);
    const username = form.get('username') ?? '';
    const account = Object.hasOwn(ACCOUNTS, username) ? ACCOUNTS[username] : undefined;
    const given = Buffer.from(form.get('password') ?? '');
    const wanted = Buffer.from(account?.password ?? crypto.randomBytes(16).toString('hex'));
    const ok = account && given.length === wanted.length && crypto.timingSafeEqual(given, wanted);
    if (!ok) {
      ctx.status = 401;
      ctx.type = 'html';
      ctx.body = loginPage(uid, params.client_id, 'Invalid username or password.');
      return undefined;
    }
    return provider.interactionFinished(ctx.req, ctx.res, {
      login: { accountId: account.sub },
    }, { mergeWithLastSubmission: false });
  }

  if (ctx.method === 'POST' && action === 'abort') {
    return provider.interactionFinished(ctx.req, ctx.res, {
      error: 'access_denied', error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  }
  return ctx.throw(405);
});

provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.on('grant.error', (ctx, err) => console.error('grant.error', err.message, err.error_description ?? ''));
provider.on('authorization.error', (ctx, err) => console.error('authorization.error', err.message, err.error_description ?? ''));

const callback = provider.callback();
listener.on('request', (req, res) => {
  if (PREFIX && req.url.startsWith(PREFIX)) { // mounted under the issuer's path, as koa-mount would
    req.originalUrl = req.url;
    req.url = req.url.slice(PREFIX.length) || '/';
  }
  return callback(req, res);
});
console.log(JSON.stringify({ ready: true, issuer: ISSUER, port, resources: RESOURCES, scopes: SCOPES }));

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    listener.close();
    listener.closeAllConnections();
    process.exit(0);
  });
}
