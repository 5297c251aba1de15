'use strict';
// A peer for bench/side_by_side.py: express with its express.json() body parser verifying an
// RS256 token from {"token": "..."} with jsonwebtoken, answering the claims as JSON. One process.
//
//   node express_verify.js PORT PUBLIC_KEY_FILE
const crypto = require('node:crypto');
const fs = require('node:fs');
const express = require('express');
const jwt = require('jsonwebtoken');

const [port, keyFile] = process.argv.slice(2);
// parsed once at start, as a long-running service would; a PEM string would be parsed per call
const publicKey = crypto.createPublicKey(fs.readFileSync(keyFile));

const app = express();
app.use(express.json());

app.get('/healthz', (req, res) => {
  res.json({ ok: true });
});

app.post('/verify', (req, res) => {
  let claims;
  try {
    claims = jwt.verify(req.body.token, publicKey, { algorithms: ['RS256'] });
  } catch (err) {
    res.status(401).json({ error: err.name });
    return;
  }
  res.json(claims);
});

app.listen(Number(port), '127.0.0.1');
