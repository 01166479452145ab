'use strict';
// Express + Auth0's express-oauth2-jwt-bearer, configured as its README shows: auth({issuerBaseURL,
// audience}) discovers the issuer's metadata and JWKS. `defect` breaks one thing at a time.

const express = require('express');
const { auth, requiredScopes } = require('express-oauth2-jwt-bearer');
const { settings, listen, notificationHandler } = require('./common');

const cfg = settings();
const defect = cfg.defect || null;
const app = express();

// json_refused: a parser registered for the wrong media type leaves JSON bodies unparsed.
app.use(defect === 'json_refused' ? express.json({ type: 'text/plain' }) : express.json());

const guards = [];
const options = { issuerBaseURL: cfg.issuer, audience: cfg.audience };
// lenient_expiry: the documented clockTolerance (default 5 s) raised to an hour.
if (defect === 'lenient_expiry') options.clockTolerance = 3600;
if (defect !== 'no_auth') guards.push(auth(options));
if (defect === 'admin_scope') guards.push(requiredScopes('webhook:admin'));

app.post(
  '/webhook',
  ...guards,
  notificationHandler(defect === 'fails_status' ? cfg.fail_status : null),
);

listen(app, cfg);
