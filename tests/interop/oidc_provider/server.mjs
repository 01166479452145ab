// panva's oidc-provider (OpenID-certified) as the authorization server for the sender's client
// authentication methods and token bindings, and a resource route (/webhook) that checks bound
// tokens with panva's jose, as a receiver would. HTTPS on 127.0.0.1, an ephemeral port.
//
// argv[2] is a JSON object:
//   cert, key           the server's certificate and key (PEM files)
//   client_ca           PEM file of the CA that issues tls_client_auth certificates
//   clients             client metadata (RFC 7591), without secrets
//   resource            the access tokens' audience (RFC 8707 resource; tokens are JWTs),
//                       by default the resource route's own URL, <issuer>/webhook
//   auth_methods        the token endpoint's client authentication methods (default: all five)
//   require_nonce       the token endpoint requires a DPoP nonce
//   resource_nonce      the resource route requires a DPoP nonce (and rotates it on each
//                       success); "always": a new one for every request, so none is ever good
// The environment's CLIENT_SECRETS is a JSON object client_id -> client_secret (secrets never go
// on a command line, where `ps` shows them).
//
// Every connection is asked for a client certificate (requestCert) and none is required
// (rejectUnauthorized false): oidc-provider decides per client, as RFC 8705 section 2 expects.

import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';

import * as jose from 'jose';
import Provider, { errors } from 'oidc-provider';

const cfg = JSON.parse(process.argv[2] || '{}');
const secrets = JSON.parse(process.env.CLIENT_SECRETS || '{}');
const RESOURCE_PATH = '/webhook';
const PROOF_WINDOW = 300;

function sha256(data) {
  // crypto.hash would need Node.js 20.12; Debian's nodejs is 18.
  return crypto.createHash('sha256').update(data).digest('base64url');
}

function peerCertificate(socket) {
  // undefined without a client certificate; a verified chain is not required here.
  return socket.getPeerX509Certificate?.() || undefined;
}

function subjectMatches(cert, property, expected) {
  const names = (cert.subjectAltName || '').split(', ');
  switch (property) {
    case 'tls_client_auth_san_dns':
      return names.includes(`DNS:${expected}`);
    case 'tls_client_auth_san_uri':
      return names.includes(`URI:${expected}`);
    case 'tls_client_auth_san_ip':
      return names.includes(`IP Address:${expected}`);
    case 'tls_client_auth_san_email':
      return names.includes(`email:${expected}`);
    case 'tls_client_auth_subject_dn':
      // node lists the RDNs most significant first, one a line; RFC 4514 reverses them.
      return cert.subject.split('\n').reverse().join(',') === expected;
    default:
      return false;
  }
}

function clients() {
  return (cfg.clients || []).map((client) => {
    const registered = {
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: 'webhook',
      ...client,
    };
    if (secrets[client.client_id] !== undefined) {
      registered.client_secret = secrets[client.client_id];
    }
    return registered;
  });
}

async function configuration(signingJwk) {
  return {
    clients: clients(),
    // The only signing key is ES256 (for the JWT access tokens); clients must not ask for RS256.
    clientDefaults: {
      grant_types: ['client_credentials'],
      id_token_signed_response_alg: 'ES256',
      response_types: [],
    },
    jwks: { keys: [signingJwk] },
    scopes: ['webhook'],
    clientAuthMethods: cfg.auth_methods || [
      'client_secret_basic',
      'client_secret_post',
      'private_key_jwt',
      'tls_client_auth',
      'self_signed_tls_client_auth',
    ],
    enabledJWA: {
      clientAuthSigningAlgValues: ['RS256', 'PS256', 'ES256'],
      dPoPSigningAlgValues: ['ES256', 'PS256', 'RS256'],
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      dPoP: {
        enabled: true,
        nonceSecret: crypto.randomBytes(32),
        requireNonce: () => Boolean(cfg.require_nonce),
      },
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        tlsClientAuth: true,
        selfSignedTlsClientAuth: true,
        getCertificate: (ctx) => peerCertificate(ctx.socket),
        // tls_client_auth: the chain must verify against client_ca (node checked it).
        certificateAuthorized: (ctx) => ctx.socket.authorized === true,
        certificateSubjectMatches: (ctx, property, expected) => {
          const cert = peerCertificate(ctx.socket);
          return cert !== undefined && subjectMatches(cert, property, expected);
        },
      },
      // JWT access tokens, so that a test reads their cnf claim as a receiver does.
      resourceIndicators: {
        enabled: true,
        defaultResource: async (ctx, client, oneOf) => oneOf || cfg.resource,
        getResourceServerInfo: async (ctx, indicator) => {
          if (indicator !== cfg.resource) {
            throw new errors.InvalidTarget(`unknown resource ${indicator}`);
          }
          return {
            scope: 'webhook',
            audience: cfg.resource,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
        useGrantedResource: async () => true,
      },
    },
    ttl: { ClientCredentials: 600 },
  };
}

// The receiver: a JWT access token from this issuer for cfg.resource, and its binding.
function resourceRoute(issuer, publicKey) {
  const seenJti = new Set();
  let nonce = crypto.randomBytes(16).toString('base64url');
  const stats = { accepted: 0, nonce_challenges: 0, refused: 0 };

  function refuse(res, scheme, error, description, extra = {}) {
    stats.refused += 1;
    res.writeHead(401, {
      'WWW-Authenticate': `${scheme} error="${error}", error_description="${description}"`,
      'Content-Type': 'application/json',
      ...extra,
    });
    res.end(JSON.stringify({ error, error_description: description }));
  }

  async function check(req, res) {
    const [scheme, token] = (req.headers.authorization || '').split(' ');
    if (!token) return refuse(res, 'Bearer', 'invalid_token', 'no access token');
    let claims;
    try {
      ({ payload: claims } = await jose.jwtVerify(token, publicKey, {
        issuer,
        audience: cfg.resource,
        typ: 'at+jwt',
      }));
    } catch (err) {
      return refuse(res, 'Bearer', 'invalid_token', `token: ${err.code || 'invalid'}`);
    }
    const cnf = claims.cnf || {};
    if (cnf['x5t#S256'] !== undefined) {
      const cert = peerCertificate(req.socket);
      const actual = cert && sha256(cert.raw);
      if (actual !== cnf['x5t#S256']) {
        return refuse(res, 'Bearer', 'invalid_token', 'certificate does not match cnf.x5t#S256');
      }
    }
    if (cnf.jkt === undefined) {
      return scheme.toLowerCase() === 'bearer'
        ? accept(res, claims)
        : refuse(res, 'Bearer', 'invalid_token', 'unbound token with the DPoP scheme');
    }
    if (scheme !== 'DPoP') {
      return refuse(res, 'DPoP', 'invalid_token', 'a DPoP-bound token needs the DPoP scheme');
    }
    const proof = req.headers.dpop;
    if (!proof) return refuse(res, 'DPoP', 'invalid_dpop_proof', 'no DPoP proof');
    let header;
    let payload;
    try {
      ({ protectedHeader: header, payload } = await jose.jwtVerify(proof, jose.EmbeddedJWK, {
        typ: 'dpop+jwt',
        algorithms: ['ES256', 'PS256', 'RS256'],
      }));
    } catch (err) {
      return refuse(res, 'DPoP', 'invalid_dpop_proof', `proof: ${err.code || 'invalid'}`);
    }
    const htu = new URL(req.url, issuer);
    htu.search = '';
    const ath = sha256(token);
    const problems = [
      [payload.htm !== req.method, 'htm'],
      [payload.htu !== htu.href, 'htu'],
      [payload.ath !== ath, 'ath'],
      [typeof payload.jti !== 'string' || seenJti.has(payload.jti), 'jti'],
      [Math.abs(Date.now() / 1000 - payload.iat) > PROOF_WINDOW, 'iat'],
      [(await jose.calculateJwkThumbprint(header.jwk)) !== cnf.jkt, 'jkt'],
    ].filter(([bad]) => bad);
    if (problems.length) {
      return refuse(res, 'DPoP', 'invalid_dpop_proof', `proof ${problems[0][1]} mismatch`);
    }
    if (cfg.resource_nonce === 'always') nonce = crypto.randomBytes(16).toString('base64url');
    if (cfg.resource_nonce && payload.nonce !== nonce) {
      stats.nonce_challenges += 1;
      return refuse(res, 'DPoP', 'use_dpop_nonce', 'a DPoP nonce is required', {
        'DPoP-Nonce': nonce,
      });
    }
    seenJti.add(payload.jti);
    if (cfg.resource_nonce) {
      // RFC 9449 section 8.2: a fresh nonce may come with any answer.
      nonce = crypto.randomBytes(16).toString('base64url');
      res.setHeader('DPoP-Nonce', nonce);
    }
    return accept(res, claims);
  }

  function accept(res, claims) {
    stats.accepted += 1;
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ ok: true, cnf: claims.cnf || null }));
  }

  return (req, res) => {
    if (req.method === 'GET' && req.url === `${RESOURCE_PATH}/stats`) {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(stats));
      return;
    }
    req.resume();
    req.on('end', () => {
      check(req, res).catch((err) => {
        console.error(err);
        res.writeHead(500);
        res.end();
      });
    });
  };
}

const server = https.createServer({
  cert: fs.readFileSync(cfg.cert),
  key: fs.readFileSync(cfg.key),
  ca: cfg.client_ca ? fs.readFileSync(cfg.client_ca) : undefined,
  requestCert: true,
  rejectUnauthorized: false,
});
server.listen(0, '127.0.0.1', async () => {
  // The issuer names the port, known only once the socket is bound.
  const issuer = `https://127.0.0.1:${server.address().port}`;
  cfg.resource ??= `${issuer}${RESOURCE_PATH}`;
  const { privateKey, publicKey } = await jose.generateKeyPair('ES256', { extractable: true });
  const signingJwk = { ...(await jose.exportJWK(privateKey)), kid: 'as-1', alg: 'ES256', use: 'sig' };
  const provider = new Provider(issuer, await configuration(signingJwk));
  // oidc-provider answers every client authentication failure with the same words; the reason
  // goes to the log file, which a failing test quotes.
  for (const event of ['grant.error', 'server_error']) {
    provider.on(event, (ctx, err) => console.error(
      `${event}: ${err.message}: ${err.error_description || ''} ${err.error_detail || ''}`,
    ));
  }
  const oidc = provider.callback();
  const resource = resourceRoute(issuer, publicKey);
  server.on('request', (req, res) =>
    req.url.startsWith(RESOURCE_PATH) ? resource(req, res) : oidc(req, res));
  console.log(`listening on ${issuer}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
