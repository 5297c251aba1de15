'use strict';
// VerifierClient against the real verifier: identities, every refusal a class, introspection,
// sessions and revocation, request ids as the verifier logged them.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const util = require('node:util');
const {
  VerifierClient, IssuerClient, JwtAuthError, InvalidToken, TokenExpired, TokenNotYetValid,
  TokenTooOld, SignatureInvalid, KeyUnknown, AlgorithmNotAllowed, TokenMalformed, ClaimMissing,
  ClaimInvalid, AttributesMismatch, TokenRevoked, SessionNotFound, LoginRateExceeded,
  RequestInvalid, Unauthorized, PayloadTooLarge, NotFound,
} = require('..');
const { services, accessLines, waitForLines, requestId } = require('./helpers');

const verifier = () => new VerifierClient(services.verifierUrl, { backoffMs: 20 });

test('a good token is an identity, with every member the verifier answers', async () => {
  const identity = await verifier().verify(services.tokens.plain);
  assert.equal(identity.userId, 'node-plain');
  assert.equal(identity.isAdmin, false);
  assert.equal(identity.provider, 'jwt');
  assert.equal(identity.claims.plan, 'gold');
  assert.equal(identity.expiresAt, identity.claims.exp);
  assert.equal(identity.issuedAt, identity.claims.iat);
  assert.equal(identity.revocationChecked, true);
  assert.equal((await verifier().verify(services.tokens.admin)).isAdmin, true);
});

test('a token the issuer signed is verified', async () => {
  const issuer = new IssuerClient(services.issuerUrl, { apiKey: services.issuerAdminKey });
  const issued = await issuer.issue('node-issued', { isAdmin: true, claims: services.tenant });
  const identity = await verifier().verify(issued.token);
  assert.deepEqual([identity.userId, identity.isAdmin, identity.claims.jti],
    ['node-issued', true, issued.jti]);
});

// each refusal the verifier can give to POST /v1/verify with this test's configuration (pytest
// made each token so that this is the verifier's answer to it)
const refusals = [
  ['token_expired', TokenExpired],
  ['token_not_yet_valid', TokenNotYetValid],
  ['token_too_old', TokenTooOld],
  ['signature_invalid', SignatureInvalid],
  ['key_unknown', KeyUnknown],
  ['algorithm_not_allowed', AlgorithmNotAllowed],
  ['token_malformed', TokenMalformed],
  ['claim_missing', ClaimMissing],
  ['claim_invalid', ClaimInvalid],
  ['attributes_mismatch', AttributesMismatch],
];

for (const [code, cls] of refusals) {
  test(`${code} rejects with ${cls.name}, an InvalidToken`, async () => {
    const id = requestId(code);
    const error = await verifier().verify(services.tokens[code], { requestId: id })
      .then(() => assert.fail('verified'), (e) => e);
    assert.ok(error instanceof cls, `${error}`);
    assert.ok(error instanceof InvalidToken);
    assert.ok(error instanceof JwtAuthError);
    assert.deepEqual([error.status, error.code, error.requestId], [401, code, id]);
    assert.ok(error.detail.length > 0);
    assert.equal(error.problem.code, code);
    assert.equal(error.problem.status, 401);
    assert.ok(error.message.includes(`[request_id=${id}]`));
  });
}

test('a revoked token rejects with TokenRevoked; revoking again is harmless', async () => {
  const client = verifier();
  const token = services.tokens.to_revoke;
  await client.verify(token);
  assert.equal(await client.revoke(token), undefined);
  await assert.rejects(client.verify(token), (error) => error instanceof TokenRevoked
    && error.status === 401 && error.code === 'token_revoked');
  await client.revoke(token);
});

test('other refusals: request_invalid, payload_too_large, not_found', async () => {
  await assert.rejects(verifier().verify(''), (e) => e instanceof RequestInvalid
    && e.status === 400 && e.code === 'request_invalid');
  await assert.rejects(verifier().verify('x'.repeat(20000)), (e) => e instanceof PayloadTooLarge
    && e.status === 413);
  const lost = new VerifierClient(`${services.verifierUrl}/no/such/prefix`);
  await assert.rejects(lost.verify(services.tokens.good), (e) => e instanceof NotFound
    && e.status === 404 && e.code === 'not_found');
});

test('introspection: active with the identity, inactive for any bad token', async () => {
  const client = new VerifierClient(services.verifierUrl, { apiKey: services.introspectKey });
  const active = await client.introspect(services.tokens.admin);
  assert.equal(active.active, true);
  assert.deepEqual([active.sub, active.userId, active.isAdmin, active.token_type],
    ['node-admin', 'node-admin', true, 'Bearer']);
  assert.equal(typeof active.exp, 'number');
  assert.equal(active.revocationChecked, true);
  for (const bad of ['token_expired', 'signature_invalid', 'token_malformed']) {
    assert.deepEqual(await client.introspect(services.tokens[bad]), { active: false }, bad);
  }
  // the key of the call wins over the client's
  const keyless = verifier();
  assert.equal((await keyless.introspect(services.tokens.good,
    { apiKey: services.introspectKey })).active, true);
});

test('introspection without a key, or with a wrong one, rejects with Unauthorized', async () => {
  await assert.rejects(verifier().introspect(services.tokens.good), (e) => e instanceof Unauthorized
    && e.status === 401 && e.code === 'unauthorized');
  const wrong = new VerifierClient(services.verifierUrl, { apiKey: 'not-a-key-of-ours' });
  await assert.rejects(wrong.introspect(services.tokens.good), Unauthorized);
});

test('login, session, logout', async () => {
  const client = verifier();
  const session = await client.login(services.tokens.admin);
  assert.deepEqual([session.userId, session.isAdmin, session.provider],
    ['node-admin', true, 'jwt']);
  assert.ok(session.sessionId.length > 40);
  assert.ok(session.expiresAt > session.createdAt);
  // a bearer secret: not in what console.log shows
  assert.ok(!util.inspect(session).includes(session.sessionId));
  assert.ok(util.inspect(session).includes('node-admin'));

  const looked = await client.session(session.sessionId);
  assert.deepEqual({ ...looked }, { ...session });

  await client.logout(session.sessionId);
  const error = await client.session(session.sessionId).then(() => assert.fail('found'), (e) => e);
  assert.ok(error instanceof SessionNotFound);
  assert.ok(!(error instanceof InvalidToken));
  assert.deepEqual([error.status, error.code], [404, 'session_not_found']);
  await client.logout(session.sessionId); // idempotent

  await assert.rejects(client.login(services.tokens.token_expired), TokenExpired);
});

test('too many logins reject with LoginRateExceeded, saying when to come back', async () => {
  const client = verifier();
  // VERIFIER_LOGIN_RATE as shipped: 30 logins a minute for one user (node-plain logs in only here)
  const sessions = [];
  for (let i = 0; i < 30; i += 1) sessions.push(await client.login(services.tokens.plain));
  const error = await client.login(services.tokens.plain).then(() => assert.fail('logged in'),
    (e) => e);
  assert.ok(error instanceof LoginRateExceeded, `${error}`);
  assert.equal(error.status, 429);
  assert.ok(error.retryAfter >= 1 && error.retryAfter <= 60, `${error.retryAfter}`);
  for (const session of sessions) await client.logout(session.sessionId);
});

test("every call carries the caller's request id to the verifier's log", async () => {
  const client = verifier();
  const ids = { verify: requestId('verify'), login: requestId('login'),
    session: requestId('session'), logout: requestId('logout') };
  await client.verify(services.tokens.good, { requestId: ids.verify });
  const session = await client.login(services.tokens.good, { requestId: ids.login });
  await client.session(session.sessionId, { requestId: ids.session });
  await client.logout(session.sessionId, { requestId: ids.logout });
  const expected = {
    verify: ['POST', '/v1/verify', 200], login: ['POST', '/v1/sessions', 201],
    session: ['GET', '/v1/sessions/<redacted>', 200],
    logout: ['DELETE', '/v1/sessions/<redacted>', 204],
  };
  for (const [call, id] of Object.entries(ids)) {
    const lines = await waitForLines(services.verifierLog, id, 1);
    assert.equal(lines.length, 1, call);
    assert.deepEqual([lines[0].method, lines[0].path, lines[0].status], expected[call], call);
  }
});

test('without a request id, or with one the verifier would replace, each call gets a new one',
  async () => {
    const client = verifier();
    const first = await client.verify(services.tokens.token_expired).catch((e) => e);
    const second = await client.verify(services.tokens.token_expired, {
      requestId: 'has spaces "and quotes"' }).catch((e) => e);
    for (const error of [first, second]) {
      assert.ok(error instanceof TokenExpired);
      assert.match(error.requestId, /^[0-9a-f]{24}$/);
      // the verifier logged the call under the very id the error carries
      assert.equal((await waitForLines(services.verifierLog, error.requestId, 1)).length, 1);
    }
    assert.notEqual(first.requestId, second.requestId);
    // never written anywhere: the verifier replaced it, and so did the client before sending
    assert.ok(!fs.readFileSync(services.verifierLog, 'utf8').includes('and quotes'));
  });

test('a 401 is final at once: one request, however many retries are allowed', async () => {
  const id = requestId('no-retry');
  const client = new VerifierClient(services.verifierUrl, { retries: 5, backoffMs: 1 });
  await assert.rejects(client.verify(services.tokens.signature_invalid, { requestId: id }),
    SignatureInvalid);
  // the access line is written after the answer: wait for it, then give a wrongly retried
  // request (1 ms later) every chance to be logged too before counting
  await waitForLines(services.verifierLog, id, 1);
  const probe = requestId('after-no-retry');
  await client.verify(services.tokens.good, { requestId: probe });
  await waitForLines(services.verifierLog, probe, 1);
  assert.equal(accessLines(services.verifierLog, id).length, 1);
});

test('a token that is not a string is refused before any request', async () => {
  await assert.rejects(verifier().verify(undefined), TypeError);
  await assert.rejects(verifier().introspect(42), TypeError);
});
