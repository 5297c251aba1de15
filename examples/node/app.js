'use strict';
// An app backend whose routes need a token the verifier accepts, protected by the
// jwt-auth-client package (clients/node). PORT (default 3000), HOST (default 127.0.0.1) and
// VERIFIER_URL (default http://127.0.0.1:8002) come from the environment.
const express = require('express');
const { VerifierClient, requireToken, requireAdmin } = require('jwt-auth-client');

// one client for every route: its connections to the verifier are kept alive and reused. A
// request waits at most about 2 s for the verifier: 1 s per attempt, retries within the budget
const verifier = new VerifierClient(process.env.VERIFIER_URL || 'http://127.0.0.1:8002',
  { timeoutMs: 1000, retries: 2, retryBudgetMs: 1000 });
const app = express();
app.get('/me', requireToken({ client: verifier }), (req, res) => res.json(req.identity));
app.get('/admin', requireAdmin({ client: verifier }),
  (req, res) => res.json({ admin: req.identity.userId }));
const { PORT = '3000', HOST = '127.0.0.1' } = process.env;
app.listen(Number(PORT), HOST, () => console.log(`listening on http://${HOST}:${PORT}`));
