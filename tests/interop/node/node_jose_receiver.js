'use strict';
// Express + node-jose 0.10.0: the README's jose.JWS.createVerify(keystore).verify(token) with its
// default options, the keystore built from the issuer's JWKS. Before 0.11.0 (CVE-2018-0114) the
// verifier takes the key from the token's own `jwk` header (and from `x5c`, with no chain check)
// instead of the keystore. Claims are checked by hand: node-jose verifies only the signature.

const express = require('express');
const jose = require('node-jose');
const { settings, listen, getJson, notificationHandler, bearer, unauthorized } = require('./common');

const cfg = settings();

function claimsProblem(claims) {
  const now = Math.floor(Date.now() / 1000);
  if (claims.iss !== cfg.issuer) return 'wrong issuer';
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!aud.includes(cfg.audience)) return 'wrong audience';
  if (typeof claims.exp !== 'number' || claims.exp <= now) return 'expired';
  return null;
}

async function main() {
  const keystore = await jose.JWK.asKeyStore(await getJson(cfg.jwks_url));
  const app = express();
  app.use(express.json());
  app.post(
    '/webhook',
    async (req, res, next) => {
      const token = bearer(req);
      if (!token) return unauthorized(res, 'a bearer token is required');
      let claims;
      try {
        const result = await jose.JWS.createVerify(keystore).verify(token);
        claims = JSON.parse(result.payload.toString('utf8'));
      } catch (err) {
        return unauthorized(res, 'invalid token');
      }
      const problem = claimsProblem(claims);
      if (problem) return unauthorized(res, problem);
      next();
    },
    notificationHandler(null),
  );
  listen(app, cfg);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
