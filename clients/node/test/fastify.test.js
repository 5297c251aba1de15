'use strict';
// fastifyRequireToken and fastifyRequireAdmin as preHandler hooks of a real fastify app, on a
// real verifier: the same answers as the express middleware.

const test = require('node:test');
const assert = require('node:assert/strict');
const Fastify = require('fastify');
const { VerifierClient, fastifyRequireToken, fastifyRequireAdmin } = require('..');
const { services, freePort, waitForLines, requestId } = require('./helpers');

async function serve(options) {
  const app = Fastify();
  app.get('/me', { preHandler: fastifyRequireToken(options) },
    async (request) => request.identity);
  app.get('/admin', { preHandler: fastifyRequireAdmin(options) },
    async (request) => ({ admin: request.identity.userId }));
  // an identity some other hook set is not taken for a verified one
  app.get('/forged', {
    preHandler: [async (request) => { request.identity = { userId: 'mallory', isAdmin: true }; },
      fastifyRequireAdmin(options)],
  }, async (request) => ({ admin: request.identity.userId }));
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  return { url: address, close: () => app.close() };
}

let app;
test.before(async () => {
  app = await serve({ client: new VerifierClient(services.verifierUrl) });
});
test.after(async () => app && app.close());

function get(path, { token, headers = {}, base = app.url } = {}) {
  const sent = { ...headers };
  if (token !== undefined) sent.Authorization = `Bearer ${token}`;
  return fetch(`${base}${path}`, { headers: sent });
}

async function assertProblem(response, status, code) {
  assert.equal(response.status, status);
  // exactly the express middleware's type, no charset added
  assert.equal(response.headers.get('content-type'), 'application/problem+json');
  assert.equal(response.headers.get('cache-control'), 'no-store');
  const body = await response.json();
  assert.deepEqual([body.status, body.code], [status, code]);
  assert.equal(body.type, `https://jwt-custom-auth.dev/problems/${code.replace(/_/g, '-')}`);
  return body;
}

test('a good token reaches the handler, its identity on request.identity', async () => {
  const response = await get('/me', { token: services.tokens.plain });
  assert.equal(response.status, 200);
  const identity = await response.json();
  assert.deepEqual([identity.userId, identity.isAdmin, identity.claims.plan],
    ['node-plain', false, 'gold']);
  const admin = await get('/admin', { token: services.tokens.admin });
  assert.deepEqual([admin.status, await admin.json()], [200, { admin: 'node-admin' }]);
});

test('refusals: the same codes and challenges as the express middleware', async () => {
  const missing = await get('/me');
  assert.equal(missing.headers.get('www-authenticate'), 'Bearer');
  await assertProblem(missing, 401, 'token_missing');
  for (const code of ['token_expired', 'signature_invalid']) {
    const refused = await get('/me', { token: services.tokens[code] });
    assert.equal(refused.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
    await assertProblem(refused, 401, code);
  }
  const plain = await get('/admin', { token: services.tokens.plain });
  assert.equal(plain.headers.get('www-authenticate'), 'Bearer error="insufficient_scope"');
  await assertProblem(plain, 403, 'admin_required');
  await assertProblem(await get('/forged', { token: services.tokens.plain }), 403,
    'admin_required');
});

test("the incoming X-Request-Id is passed to the verifier and back", async () => {
  const id = requestId('fastify-refused');
  const response = await get('/me', { token: services.tokens.token_expired,
    headers: { 'X-Request-Id': id } });
  assert.equal(response.headers.get('x-request-id'), id);
  const [line] = await waitForLines(services.verifierLog, id, 1);
  assert.deepEqual([line.path, line.status], ['/v1/verify', 401]);
});

test('a verifier that cannot be reached: 503 with Retry-After', async () => {
  const port = await freePort(); // nothing listens there
  const down = await serve({ verifierUrl: `http://127.0.0.1:${port}`, backoffMs: 10,
    retryBudgetMs: 1000 });
  try {
    const response = await get('/me', { token: services.tokens.good, base: down.url });
    assert.ok(Number(response.headers.get('retry-after')) > 0);
    await assertProblem(response, 503, 'verifier_unavailable');
  } finally {
    await down.close();
  }
});
