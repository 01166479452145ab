'use strict';
// What every receiver here shares: its settings, HTTPS on an ephemeral loopback port, and a
// notification handler that refuses what is not a notification (so a JSON parser that never
// runs shows up as a refusal, not as an accepted empty body).

const fs = require('node:fs');
const https = require('node:https');

const STATUSES = [
  'on-course',
  'document-uploaded',
  'document2-uploaded',
  'document3-uploaded',
  'selfie-uploaded',
  'video-uploaded',
  'cancelled',
  'confirmed',
  'deleted',
];

/** Settings: one JSON object as the first argument (no secrets: those come in the environment). */
function settings() {
  return JSON.parse(process.argv[2] || '{}');
}

/** Serve `handler` over HTTPS on 127.0.0.1, port 0; the one stdout line tells the port. */
function listen(handler, cfg, onListening) {
  const server = https.createServer(
    { cert: fs.readFileSync(cfg.cert), key: fs.readFileSync(cfg.key) },
    handler,
  );
  server.listen(0, '127.0.0.1', () => {
    const url = `https://127.0.0.1:${server.address().port}`;
    if (onListening) onListening(url, server);
    console.log(`listening on ${url}`);
  });
  // The harness stops us with SIGTERM; exit cleanly so nothing lingers.
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
  return server;
}

/** GET a JSON document over HTTPS (the CA comes from NODE_EXTRA_CA_CERTS). */
function getJson(url) {
  return new Promise((resolve, reject) => {
    https
      .get(url, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`GET ${url}: HTTP ${res.statusCode}`));
          try {
            resolve(JSON.parse(text));
          } catch (err) {
            reject(err);
          }
        });
      })
      .on('error', reject);
  });
}

/** The webhook handler: 200 for a notification, 400 for anything else; throws on `failStatus`. */
function notificationHandler(failStatus) {
  return (req, res) => {
    const body = req.body;
    const ok =
      body !== null &&
      typeof body === 'object' &&
      !Array.isArray(body) &&
      typeof body.event_id === 'string' &&
      STATUSES.includes(body.status);
    if (!ok) {
      res.status(400).json({
        error_type: 'invalid_notification',
        error_message: 'expected a JSON notification with event_id and a known status',
      });
      return;
    }
    if (failStatus && body.status === failStatus) {
      // A handler bug on one status: Express answers 500.
      throw new Error(`no handler for status ${body.status}`);
    }
    res.status(200).json({ received: body.event_id });
  };
}

/** The bearer token of the Authorization header, or null. */
function bearer(req) {
  const match = /^Bearer ([^\s]+)$/i.exec(req.get('authorization') || '');
  return match ? match[1] : null;
}

function unauthorized(res, description) {
  res
    .status(401)
    .set('WWW-Authenticate', `Bearer realm="webhook", error="invalid_token"`)
    .json({ error_type: 'unauthorized', error_message: description });
}

module.exports = { STATUSES, settings, listen, getJson, notificationHandler, bearer, unauthorized };
