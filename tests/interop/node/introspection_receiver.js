'use strict';
// Express receiver for opaque tokens: each bearer token is sent to the authorization server's
// RFC 7662 introspection endpoint (the receiver authenticates as its own client, Basic) and only
// `active: true` tokens (for `audience`, when set) get in. Defect `ignore_active` takes any answer
// of the introspection endpoint as a yes. RESOURCE_SERVER_SECRET comes from the environment.

const https = require('node:https');
const express = require('express');
const { settings, listen, notificationHandler, bearer, unauthorized } = require('./common');

const cfg = settings();

function introspect(token) {
  const form = new URLSearchParams({ token, token_type_hint: 'access_token' }).toString();
  const basic = Buffer.from(
    `${encodeURIComponent(cfg.client_id)}:${encodeURIComponent(process.env.RESOURCE_SERVER_SECRET)}`,
  ).toString('base64');
  return new Promise((resolve, reject) => {
    const req = https.request(
      cfg.introspection_url,
      {
        method: 'POST',
        headers: {
          authorization: `Basic ${basic}`,
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': Buffer.byteLength(form),
          accept: 'application/json',
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => {
          if (res.statusCode !== 200) {
            return reject(new Error(`introspection answered HTTP ${res.statusCode}`));
          }
          try {
            resolve(JSON.parse(text));
          } catch (err) {
            reject(err);
          }
        });
      },
    );
    req.on('error', reject);
    req.end(form);
  });
}

const app = express();
app.use(express.json());
app.post(
  '/webhook',
  async (req, res, next) => {
    const token = bearer(req);
    if (!token) return unauthorized(res, 'a bearer token is required');
    let answer;
    try {
      answer = await introspect(token);
    } catch (err) {
      console.error(err);
      res.status(503).json({ error_type: 'unavailable', error_message: 'cannot check the token' });
      return;
    }
    if (cfg.defect !== 'ignore_active') {
      if (answer.active !== true) return unauthorized(res, 'the token is not active');
      if (cfg.audience) {
        const aud = Array.isArray(answer.aud) ? answer.aud : [answer.aud];
        if (!aud.includes(cfg.audience)) return unauthorized(res, 'the token is not for us');
      }
    }
    next();
  },
  notificationHandler(null),
);

listen(app, cfg);
