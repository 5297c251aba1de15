'use strict';
// With redis-server stopped (pytest stops it before this file runs: see
// test_node_retries_503_while_redis_is_down), the verifier answers a good token 503
// store_unavailable. The client retries those 503s under one request id, then rejects with
// StoreUnavailable; the middleware answers 503. The last test's call keeps retrying until pytest,
// seeing its 503 in the verifier's log, starts redis-server again: that same call then succeeds.

const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const {
  VerifierClient, StoreUnavailable, VerifierUnavailable, ServiceUnavailable, TokenExpired,
  requireToken,
} = require('..');
const { services, waitFor, waitForLines, accessLines, requestId } = require('./helpers');

test('a 503 is retried, then StoreUnavailable; every attempt under the one request id',
  async () => {
    const client = new VerifierClient(services.verifierUrl, { retries: 2, backoffMs: 10 });
    const id = requestId('store-down');
    const error = await client.verify(services.tokens.good, { requestId: id })
      .then(() => assert.fail('verified without Redis'), (e) => e);
    assert.ok(error instanceof StoreUnavailable, `${error}`);
    assert.ok(error instanceof VerifierUnavailable);
    assert.ok(error instanceof ServiceUnavailable);
    assert.deepEqual([error.status, error.code, error.attempts, error.requestId],
      [503, 'store_unavailable', 3, id]);
    const lines = await waitForLines(services.verifierLog, id, 3);
    assert.deepEqual(lines.map((line) => line.status), [503, 503, 503]);
  });

test('a token that is bad anyway still gets its 401 at once', async () => {
  const client = new VerifierClient(services.verifierUrl, { retries: 5, backoffMs: 10 });
  const id = requestId('store-down-401');
  await assert.rejects(client.verify(services.tokens.token_expired, { requestId: id }),
    TokenExpired);
  await waitForLines(services.verifierLog, id, 1);
  const probe = requestId('store-down-probe');
  await client.verify(services.tokens.token_expired, { requestId: probe }).catch(() => {});
  await waitForLines(services.verifierLog, probe, 1);
  assert.equal(accessLines(services.verifierLog, id).length, 1);
});

test('introspection needs Redis too: StoreUnavailable', async () => {
  const client = new VerifierClient(services.verifierUrl,
    { apiKey: services.introspectKey, retries: 1, backoffMs: 10 });
  await assert.rejects(client.introspect(services.tokens.good),
    (error) => error instanceof StoreUnavailable && error.attempts === 2);
});

test('the middleware answers 503 store_unavailable with Retry-After', async () => {
  const app = express();
  app.get('/me', requireToken({ verifierUrl: services.verifierUrl, retries: 1, backoffMs: 10 }),
    (req, res) => res.json(req.identity));
  const server = await new Promise((resolve) => {
    const made = app.listen(0, '127.0.0.1', () => resolve(made));
  });
  try {
    const id = requestId('store-down-express');
    const response = await fetch(`http://127.0.0.1:${server.address().port}/me`, {
      headers: { Authorization: `Bearer ${services.tokens.good}`, 'X-Request-Id': id } });
    assert.equal(response.status, 503);
    assert.match(response.headers.get('content-type'), /^application\/problem\+json/);
    assert.ok(Number(response.headers.get('retry-after')) >= 1);
    assert.equal(response.headers.get('x-request-id'), id);
    assert.equal((await response.json()).code, 'store_unavailable');
    assert.equal((await waitForLines(services.verifierLog, id, 2)).length, 2);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test('a call still retrying when Redis comes back succeeds', async () => {
  const id = process.env.JWT_AUTH_RECOVER_ID;
  assert.ok(id, 'JWT_AUTH_RECOVER_ID: pytest names the call it waits for');
  // generous bounds: pytest starts redis-server as soon as it sees this call's first 503
  const client = new VerifierClient(services.verifierUrl,
    { retries: 1000, backoffMs: 50, maxBackoffMs: 500, retryBudgetMs: 60000 });
  const identity = await client.verify(services.tokens.good, { requestId: id });
  assert.equal(identity.userId, 'node-user');
  assert.equal(identity.revocationChecked, true);
  // the 200's access line is written just after the answer: wait for it
  const lines = await waitFor(() => {
    const found = accessLines(services.verifierLog, id);
    return found.some((line) => line.status === 200) && found;
  }, { what: `the 200 logged for ${id}` });
  assert.ok(lines.length >= 2, `${lines.length} attempt(s)`);
  assert.equal(lines[0].status, 503);
  assert.equal(lines[lines.length - 1].status, 200);
  assert.ok(lines.slice(0, -1).every((line) => line.status === 503));
});
