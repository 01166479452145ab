'use strict';
// Express + jsonwebtoken 4.1.0, the documented 2015 call jwt.verify(token, publicKeyPem, options).
// Before 4.2.2 (CVE-2015-9235) verify() lets the token's header pick the algorithm, so an HS256
// token HMAC-keyed with the public key PEM verifies. (4.2.0/4.2.1 already refuse HS* for a
// "BEGIN PUBLIC KEY" PEM; 4.1.0 is the last version with no algorithm check at all.)

const crypto = require('node:crypto');
const express = require('express');
const jwt = require('jsonwebtoken');
const { settings, listen, getJson, notificationHandler, bearer, unauthorized } = require('./common');

const cfg = settings();

async function main() {
  const jwks = await getJson(cfg.jwks_url);
  // What the app would have kept in a file: the issuer's public key as SPKI PEM.
  const pem = crypto.createPublicKey({ key: jwks.keys[0], format: 'jwk' }).export({
    type: 'spki',
    format: 'pem',
  });
  const app = express();
  app.use(express.json());
  app.post(
    '/webhook',
    (req, res, next) => {
      const token = bearer(req);
      if (!token) return unauthorized(res, 'a bearer token is required');
      try {
        req.auth = jwt.verify(token, pem, { audience: cfg.audience, issuer: cfg.issuer });
      } catch (err) {
        return unauthorized(res, err.message);
      }
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
