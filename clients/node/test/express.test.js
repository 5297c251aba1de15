'use strict';
// requireToken and requireAdmin in a real express app, on a real verifier, requests sent over
// HTTP as a browser or another backend sends them.

const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const { VerifierClient, requireToken, requireAdmin, bearer } = require('..');
const { services, freePort, waitForLines, accessLines, requestId } = require('./helpers');

async function serve(app) {
  const server = await new Promise((resolve) => {
    const made = app.listen(0, '127.0.0.1', () => resolve(made));
  });
  return { url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((resolve) => server.close(resolve)) };
}

function makeApp(options) {
  const app = express();
  app.get('/me', requireToken(options), (req, res) => res.json(req.identity));
  app.get('/admin', requireAdmin(options), (req, res) => res.json({ admin: req.identity.userId }));
  // both on one route: the token is checked once
  app.get('/both', requireToken(options), requireAdmin(options),
    (req, res) => res.json({ admin: req.identity.userId }));
  // an identity some other middleware set is not taken for a verified one
  app.get('/forged', (req, res, next) => {
    req.identity = { userId: 'mallory', isAdmin: true };
    next();
  }, requireAdmin(options), (req, res) => res.json({ admin: req.identity.userId }));
  return app;
}

let app;
test.before(async () => {
  app = await serve(makeApp({ client: new VerifierClient(services.verifierUrl) }));
});
test.after(async () => app && app.close());

function get(path, { token, headers = {} } = {}) {
  const sent = { ...headers };
  if (token !== undefined) sent.Authorization = `Bearer ${token}`;
  return fetch(`${app.url}${path}`, { headers: sent });
}

async function assertProblem(response, status, code) {
  assert.equal(response.status, status);
  assert.match(response.headers.get('content-type'), /^application\/problem\+json/);
  assert.equal(response.headers.get('cache-control'), 'no-store');
  const body = await response.json();
  assert.equal(body.code, code);
  assert.equal(body.status, status);
  assert.equal(body.type, `https://jwt-custom-auth.dev/problems/${code.replace(/_/g, '-')}`);
  assert.ok(body.title && body.detail);
  return body;
}

test('a good token reaches the route, its identity on req.identity', async () => {
  const response = await get('/me', { token: services.tokens.plain });
  assert.equal(response.status, 200);
  const identity = await response.json();
  assert.deepEqual([identity.userId, identity.isAdmin, identity.provider, identity.claims.plan],
    ['node-plain', false, 'jwt', 'gold']);
  assert.equal(identity.revocationChecked, true);
  const admin = await get('/admin', { token: services.tokens.admin });
  assert.equal(admin.status, 200);
  assert.deepEqual(await admin.json(), { admin: 'node-admin' });
});

test("a refused token is a 401 with the verifier's code and an invalid_token challenge",
  async () => {
    for (const code of ['token_expired', 'signature_invalid', 'token_malformed']) {
      for (const path of ['/me', '/admin']) {
        const response = await get(path, { token: services.tokens[code] });
        assert.equal(response.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
        assert.match(response.headers.get('x-request-id'), /^[0-9a-f]{24}$/);
        await assertProblem(response, 401, code);
      }
    }
  });

test('no bearer token: 401 token_missing with a bare Bearer challenge, no verifier call',
  async () => {
    for (const headers of [{}, { Authorization: 'Basic dXNlcjpwYXNz' }, { Authorization: 'Bearer ' }]) {
      const response = await get('/me', { headers });
      assert.equal(response.headers.get('www-authenticate'), 'Bearer');
      await assertProblem(response, 401, 'token_missing');
    }
  });

test('a good token that is not an admin\'s gets 403 on an admin route', async () => {
  const response = await get('/admin', { token: services.tokens.plain });
  assert.equal(response.headers.get('www-authenticate'), 'Bearer error="insufficient_scope"');
  await assertProblem(response, 403, 'admin_required');
  assert.equal((await get('/me', { token: services.tokens.plain })).status, 200);
});

test("the incoming X-Request-Id is the verifier's, for a good and a refused token", async () => {
  const good = requestId('express-good');
  const refused = requestId('express-refused');
  assert.equal((await get('/me', { token: services.tokens.good,
    headers: { 'X-Request-Id': good } })).status, 200);
  const response = await get('/me', { token: services.tokens.token_expired,
    headers: { 'X-Request-Id': refused } });
  assert.equal(response.status, 401);
  assert.equal(response.headers.get('x-request-id'), refused);
  const [goodLine] = await waitForLines(services.verifierLog, good, 1);
  const [refusedLine] = await waitForLines(services.verifierLog, refused, 1);
  assert.deepEqual([goodLine.path, goodLine.status], ['/v1/verify', 200]);
  assert.deepEqual([refusedLine.path, refusedLine.status], ['/v1/verify', 401]);
});

test('requireToken then requireAdmin on one route asks the verifier once', async () => {
  const id = requestId('express-both');
  const response = await get('/both', { token: services.tokens.admin,
    headers: { 'X-Request-Id': id } });
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { admin: 'node-admin' });
  await waitForLines(services.verifierLog, id, 1);
  // a second check would have been logged before the app answered
  assert.equal(accessLines(services.verifierLog, id).length, 1);
  const plain = await get('/both', { token: services.tokens.plain });
  await assertProblem(plain, 403, 'admin_required');
});

test('requireAdmin checks the token itself when req.identity came from elsewhere', async () => {
  const missing = await get('/forged');
  await assertProblem(missing, 401, 'token_missing');
  await assertProblem(await get('/forged', { token: services.tokens.plain }), 403,
    'admin_required');
  const admin = await get('/forged', { token: services.tokens.admin });
  assert.deepEqual(await admin.json(), { admin: 'node-admin' });
});

test('a verifier that cannot be reached: 503 with Retry-After, and the app stays up', async () => {
  const port = await freePort(); // nothing listens there
  const down = await serve(makeApp({ verifierUrl: `http://127.0.0.1:${port}`, backoffMs: 10,
    retryBudgetMs: 1000 }));
  try {
    for (const path of ['/me', '/admin']) {
      const started = performance.now();
      const response = await fetch(`${down.url}${path}`,
        { headers: { Authorization: `Bearer ${services.tokens.good}` } });
      assert.ok(performance.now() - started < 5000);
      assert.ok(Number(response.headers.get('retry-after')) > 0);
      assert.equal(response.headers.get('www-authenticate'), null);
      await assertProblem(response, 503, 'verifier_unavailable');
    }
    assert.equal((await fetch(`${down.url}/nothing-here`)).status, 404);
  } finally {
    await down.close();
  }
});

test('realm names the realm in every challenge', async () => {
  const named = await serve(makeApp({ verifierUrl: services.verifierUrl, realm: 'orders' }));
  try {
    const missing = await fetch(`${named.url}/me`);
    assert.equal(missing.headers.get('www-authenticate'), 'Bearer realm="orders"');
    const refused = await fetch(`${named.url}/me`,
      { headers: { Authorization: `Bearer ${services.tokens.token_expired}` } });
    assert.equal(refused.headers.get('www-authenticate'),
      'Bearer realm="orders", error="invalid_token"');
  } finally {
    await named.close();
  }
});

test('bearer() reads the credential of an Authorization header', () => {
  assert.equal(bearer('Bearer abc.def.ghi'), 'abc.def.ghi');
  assert.equal(bearer('bearer   abc '), 'abc');
  assert.equal(bearer('Basic abc'), null);
  assert.equal(bearer('Bearer'), null);
  assert.equal(bearer(undefined), null);
  assert.throws(() => requireToken({}), TypeError);
});
