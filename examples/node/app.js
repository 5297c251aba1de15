'use strict';
// An app backend whose routes need a token the verifier accepts. PORT (default 3000), HOST
// (default 127.0.0.1) and VERIFIER_URL (default http://127.0.0.1:8002) come from the environment.
const express = require('express');
const { requireToken, requireAdmin } = require('./verifier-middleware');

const options = { verifierUrl: process.env.VERIFIER_URL || 'http://127.0.0.1:8002', timeoutMs: 2000 };
const app = express();
app.get('/me', requireToken(options), (req, res) => res.json(req.identity));
app.get('/admin', requireAdmin(options), (req, res) => res.json({ admin: req.identity.userId }));
const { PORT = '3000', HOST = '127.0.0.1' } = process.env;
app.listen(Number(PORT), HOST, () => console.log(`listening on http://${HOST}:${PORT}`));
