'use strict';
// Which calls are retried, and how long a call may take: connection refused, a peer that
// accepts and closes, one that never answers, the budget, the caller's AbortSignal. The
// services' own 503 is retried in store-down.test.js (pytest stops redis-server for it).

const test = require('node:test');
const assert = require('node:assert/strict');
const {
  VerifierClient, IssuerClient, ServiceUnavailable, VerifierUnavailable, TokenExpired, requireToken,
} = require('..');
const {
  services, freePort, silentServer, countingProxy, waitFor, waitForLines, requestId,
} = require('./helpers');

test('connection refused is retried, then ServiceUnavailable within the budget', async () => {
  const port = await freePort(); // nothing listens there
  const client = new VerifierClient(`http://127.0.0.1:${port}`,
    { retries: 3, backoffMs: 50, retryBudgetMs: 2000 });
  const started = performance.now();
  const error = await client.verify('a.b.c', { requestId: 'no-answer-1' }).catch((e) => e);
  const elapsed = performance.now() - started;
  assert.ok(error instanceof VerifierUnavailable, `${error}`);
  assert.ok(error instanceof ServiceUnavailable);
  assert.equal(error.attempts, 4);
  assert.equal(error.status, 0);
  assert.equal(error.code, 'verifier_unavailable');
  assert.equal(error.requestId, 'no-answer-1'); // the id the caller can find in its own logs
  assert.match(error.detail, /ECONNREFUSED/);
  assert.ok(error.cause, 'the connection error underneath');
  // three waits of at least half of 50, 100 and 200 ms (the next test bounds the total)
  assert.ok(elapsed >= 175, `${elapsed} ms`);
});

test('the retry budget bounds the total time', async () => {
  const port = await freePort();
  const client = new VerifierClient(`http://127.0.0.1:${port}`,
    { retries: 100, backoffMs: 50, maxBackoffMs: 200, retryBudgetMs: 500 });
  const started = performance.now();
  const error = await client.verify('a.b.c').catch((e) => e);
  const elapsed = performance.now() - started;
  assert.ok(error instanceof ServiceUnavailable);
  assert.ok(error.attempts > 1 && error.attempts < 100, `${error.attempts}`);
  // 100 retries would wait about 15 s; the budget stops them after 0.5 s (the bound is loose
  // so that a busy machine does not fail it)
  assert.ok(elapsed < 5000, `${elapsed} ms`);
});

test('a connection closed without an answer is retried', async () => {
  const dead = await silentServer('close');
  try {
    const client = new VerifierClient(dead.url, { retries: 2, backoffMs: 10 });
    const error = await client.verify('a.b.c').catch((e) => e);
    assert.ok(error instanceof ServiceUnavailable, `${error}`);
    assert.equal(error.attempts, 3);
    assert.equal(dead.requests, 3);
  } finally {
    await dead.stop();
  }
});

test('an attempt that gets no answer in timeoutMs is abandoned and retried', async () => {
  const hung = await silentServer('hang');
  try {
    const client = new IssuerClient(hung.url, { apiKey: 'k', timeoutMs: 200, retries: 1,
      backoffMs: 10 });
    const started = performance.now();
    const error = await client.issue('x').catch((e) => e);
    const elapsed = performance.now() - started;
    assert.ok(error instanceof ServiceUnavailable, `${error}`);
    assert.equal(error.code, 'issuer_unavailable');
    assert.equal(error.attempts, 2);
    assert.match(error.detail, /no answer within 200 ms/);
    // at most one request per attempt reached it (node's fetch adds no retry of its own); fewer
    // when an attempt's time ran out while still connecting, which a loaded machine can cause
    assert.ok(hung.requests <= 2, `${hung.requests} requests`);
    // two attempts of 200 ms, not of the default 5 s
    assert.ok(elapsed >= 400 && elapsed < 4000, `${elapsed} ms`);
  } finally {
    await hung.stop();
  }
});

test("the caller's AbortSignal ends a call at once, retries included, with its reason",
  async () => {
    const hung = await silentServer('hang');
    try {
      const client = new VerifierClient(hung.url, { timeoutMs: 5000, retries: 5 });
      const controller = new AbortController();
      const reason = new Error('the user went away');
      const pending = client.verify('a.b.c', { signal: controller.signal });
      await waitFor(() => hung.requests === 1, { what: 'the request at the hung server' });
      controller.abort(reason);
      const started = performance.now();
      await assert.rejects(pending, (error) => error === reason);
      assert.ok(performance.now() - started < 4000); // not the 5 s timeout
      assert.equal(hung.requests, 1);
      // aborted already: no request at all
      await assert.rejects(client.verify('a.b.c', { signal: AbortSignal.abort(reason) }),
        (error) => error === reason);
      assert.equal(hung.requests, 1);
    } finally {
      await hung.stop();
    }
  });

test('kept-alive connections carry call after call, each call with its own id', async () => {
  const proxy = await countingProxy(services.verifierUrl);
  try {
    const client = new VerifierClient(proxy.url, { retries: 0 });
    const ids = Array.from({ length: 10 }, (_, i) => requestId(`pool-${i}`));
    for (const id of ids) {
      await assert.rejects(client.verify(services.tokens.token_expired, { requestId: id }),
        TokenExpired);
    }
    // node's fetch hands a connection back to its pool a moment after the answer's body is
    // read, so a call made at once may open a second one; the two then take turns. What
    // matters: not one connection per call
    assert.ok(proxy.connections <= 2, `${proxy.connections} connections for 10 calls`);
    for (const id of ids) {
      assert.equal((await waitForLines(services.verifierLog, id, 1)).length, 1);
    }
  } finally {
    await proxy.stop();
  }
});

test('options are checked when the client is made', () => {
  assert.throws(() => new VerifierClient('ftp://127.0.0.1'), TypeError);
  assert.throws(() => new VerifierClient('not a url'), TypeError);
  assert.throws(() => new VerifierClient('http://127.0.0.1', { retries: -1 }), TypeError);
  assert.throws(() => new VerifierClient('http://127.0.0.1', { retries: 1.5 }), TypeError);
  assert.throws(() => new VerifierClient('http://127.0.0.1', { timeoutMs: 0 }), TypeError);
  assert.throws(() => new VerifierClient('http://127.0.0.1', { timeout: 5 }), /unknown option timeout/);
  assert.throws(() => new IssuerClient('http://127.0.0.1', { apiKey: 'k', retry: 1 }),
    /unknown option retry/);
  assert.throws(() => requireToken({ verifierUrl: 'http://127.0.0.1', relm: 'x' }),
    /unknown option relm/);
  assert.equal(new VerifierClient('http://127.0.0.1:8002/base/').baseUrl,
    'http://127.0.0.1:8002/base');
});
