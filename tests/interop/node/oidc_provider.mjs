// panva's oidc-provider as the authorization server: client credentials grant, opaque access
// tokens, RFC 7662 introspection, HTTPS with the kit's leaf. Settings as in common.js; client
// secrets come from the environment (SENDER_SECRET, RESOURCE_SERVER_SECRET).
//
// sender_auth_method: the sender client's registered token_endpoint_auth_method. oidc-provider
// itself takes client_secret_basic and client_secret_post as interchangeable (either is accepted
// whichever is registered); enforce_auth_method adds a guard that refuses the unregistered one,
// as ORY Hydra or Keycloak do, with Hydra's wording.
// require_audience: behave like Auth0 with no default audience: a token request without an
// `audience` parameter is refused (access_denied, Auth0's wording), and `audience` is taken as
// the RFC 8707 resource indicator, so the token is bound to it (introspection shows it as aud).

import fs from 'node:fs';
import https from 'node:https';
import querystring from 'node:querystring';

import Provider, { errors } from 'oidc-provider';

const cfg = JSON.parse(process.argv[2] || '{}');
const audience = cfg.require_audience || null;

function configuration() {
  const features = {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
  };
  if (audience) {
    features.resourceIndicators = {
      enabled: true,
      async defaultResource(ctx, client, oneOf) {
        if (oneOf) return oneOf;
        const error = new errors.AccessDenied(
          'No audience parameter was provided, and no default audience has been configured',
        );
        error.status = error.statusCode = 403;
        throw error;
      },
      async getResourceServerInfo(ctx, resourceIndicator) {
        if (resourceIndicator !== audience) {
          throw new errors.InvalidTarget(`unknown audience ${resourceIndicator}`);
        }
        return { scope: 'webhook', audience, accessTokenFormat: 'opaque' };
      },
      async useGrantedResource() {
        return false;
      },
    };
  }
  return {
    clients: [
      {
        client_id: 'webhook-sender',
        client_secret: process.env.SENDER_SECRET,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        scope: 'webhook',
        token_endpoint_auth_method: cfg.sender_auth_method || 'client_secret_basic',
      },
      {
        // The receiver authenticates as this one to introspect.
        client_id: 'webhook-receiver',
        client_secret: process.env.RESOURCE_SERVER_SECRET,
        grant_types: [],
        response_types: [],
        redirect_uris: [],
      },
    ],
    scopes: ['webhook'],
    features,
    ttl: { ClientCredentials: 600 },
  };
}

// Auth0 names the resource `audience`; oidc-provider reads RFC 8707 `resource`. Rename it before
// oidc-provider parses the body (it takes an already-read body as a string).
async function audienceAsResource(ctx, next) {
  if (audience && ctx.method === 'POST' && ctx.path === '/token' && ctx.is('urlencoded')) {
    const raw = await new Promise((resolve, reject) => {
      let text = '';
      ctx.req.setEncoding('utf8');
      ctx.req.on('data', (chunk) => {
        text += chunk;
        if (text.length > 56 * 1024) reject(new Error('body too large'));
      });
      ctx.req.on('end', () => resolve(text));
      ctx.req.on('error', reject);
    });
    const params = querystring.parse(raw);
    if (typeof params.audience === 'string' && params.resource === undefined) {
      params.resource = params.audience;
    }
    delete params.audience;
    ctx.req.body = querystring.stringify(params);
  }
  await next();
}

// The one guard oidc-provider lacks for enforce_auth_method (see the top of this file).
async function registeredAuthMethodOnly(ctx, next) {
  const header = ctx.get('authorization');
  if (cfg.enforce_auth_method && ctx.method === 'POST' && ctx.path === '/token' && /^basic /i.test(header)) {
    const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
    const clientId = decodeURIComponent(decoded.split(':', 1)[0].replace(/\+/g, '%20'));
    const registered = clientId === 'webhook-sender' ? cfg.sender_auth_method : null;
    if (registered && registered !== 'client_secret_basic') {
      ctx.status = 401;
      ctx.set('WWW-Authenticate', 'Basic realm="token"');
      ctx.body = {
        error: 'invalid_client',
        error_description:
          `The OAuth 2.0 Client supports client authentication method '${registered}', ` +
          "but method 'client_secret_basic' was requested.",
      };
      return;
    }
  }
  await next();
}

const server = https.createServer({
  cert: fs.readFileSync(cfg.cert),
  key: fs.readFileSync(cfg.key),
});
server.listen(0, '127.0.0.1', () => {
  // The issuer names the port, known only once the socket is bound.
  const issuer = `https://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration());
  provider.use(registeredAuthMethodOnly);
  provider.use(audienceAsResource);
  server.on('request', provider.callback());
  console.log(`listening on ${issuer}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
