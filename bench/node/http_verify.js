'use strict';
// A peer for bench/side_by_side.py: node's own http server verifying an RS256 token from a
// JSON body {"token": "..."} with jsonwebtoken, answering the claims as JSON. One process.
//
//   node http_verify.js PORT PUBLIC_KEY_FILE
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const jwt = require('jsonwebtoken');

const [port, keyFile] = process.argv.slice(2);
// parsed once at start, as a long-running service would; a PEM string would be parsed per call
const publicKey = crypto.createPublicKey(fs.readFileSync(keyFile));

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

function verify(raw) {
  const { token } = JSON.parse(raw);
  return jwt.verify(token, publicKey, { algorithms: ['RS256'] });
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') {
    send(res, 200, { ok: true });
    return;
  }
  if (req.method !== 'POST' || req.url !== '/verify') {
    send(res, 404, { error: 'not_found' });
    return;
  }
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    let claims;
    try {
      claims = verify(Buffer.concat(chunks).toString('utf8'));
    } catch (err) {
      send(res, 401, { error: err.name });
      return;
    }
    send(res, 200, claims);
  });
});

server.listen(Number(port), '127.0.0.1');
