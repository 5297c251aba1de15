'use strict';
// IssuerClient against the real issuer: issued tokens, each refusal a class, request ids.

const test = require('node:test');
const assert = require('node:assert/strict');
const util = require('node:util');
const {
  IssuerClient, VerifierClient, IssuedToken, JwtAuthError, Unauthorized, ApiKeyMissing,
  ApiKeyInvalid, Forbidden, AdminNotPermitted, PayloadRejected, PayloadClaimInvalid,
  ClaimReserved, RateLimited, RequestInvalid, ExpiresInInvalid, InvalidToken,
} = require('..');
const { services, waitForLines, requestId } = require('./helpers');

const issuer = (apiKey = services.issuerKey) => new IssuerClient(services.issuerUrl, { apiKey });

function payload(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

test('issue: a typed token the verifier accepts, with the claims asked for', async () => {
  const before = Math.floor(Date.now() / 1000);
  const issued = await issuer().issue('node-42', { claims: { ...services.tenant, plan: 'gold' } });
  assert.ok(issued instanceof IssuedToken);
  assert.equal(issued.tokenType, 'Bearer');
  assert.match(issued.jti, /^\S+$/);
  assert.match(issued.kid, /^\S+$/);
  assert.equal(issued.token.split('.').length, 3);
  const claims = payload(issued.token);
  assert.deepEqual([claims.userId, claims.plan, claims.jti, claims.exp],
    ['node-42', 'gold', issued.jti, issued.expiresAt]);
  assert.equal('isAdmin' in claims, false); // not asked for, not sent
  assert.ok(issued.expiresAt >= before + 3600 - 5); // ISSUER_TOKEN_TTL as shipped
  // a bearer secret: not in what console.log shows
  assert.ok(!util.inspect(issued).includes(issued.token));

  const identity = await new VerifierClient(services.verifierUrl).verify(issued.token);
  assert.deepEqual([identity.userId, identity.isAdmin, identity.claims.plan],
    ['node-42', false, 'gold']);
});

test('expiresIn is the lifetime; isAdmin false is sent as it is', async () => {
  const issued = await issuer().issue('node-43', { expiresIn: 120, isAdmin: false,
    claims: services.tenant });
  const claims = payload(issued.token);
  assert.equal(claims.exp - claims.iat, 120);
  assert.equal(claims.isAdmin, false);
});

test('an admin client may mint admin tokens', async () => {
  const issued = await issuer(services.issuerAdminKey).issue('node-boss',
    { isAdmin: true, claims: services.tenant });
  assert.equal(payload(issued.token).isAdmin, true);
  assert.equal((await new VerifierClient(services.verifierUrl).verify(issued.token)).isAdmin, true);
});

async function refusal(promise) {
  return promise.then(() => assert.fail('issued'), (error) => error);
}

test('each refusal of the issuer is its class', async () => {
  const cases = [
    // [call, class, parent, status, code, field]; each call made only when its turn comes
    [() => issuer().issue('x', { apiKey: '' }), ApiKeyMissing, Unauthorized, 401, 'api_key_missing'],
    [() => issuer('not-our-key').issue('x'), ApiKeyInvalid, Unauthorized, 401, 'api_key_invalid'],
    [() => issuer().issue('x', { isAdmin: true }), AdminNotPermitted, Forbidden, 403,
      'admin_not_permitted', 'isAdmin'],
    [() => issuer().issue(''), PayloadClaimInvalid, PayloadRejected, 422, 'claim_invalid', 'userId'],
    [() => issuer().issue('x', { claims: { exp: 1 } }), ClaimReserved, PayloadRejected, 422,
      'claim_reserved', 'exp'],
    [() => issuer().issue('x', { expiresIn: 0 }), ExpiresInInvalid, RequestInvalid, 400,
      'expires_in_invalid', 'expires_in'],
  ];
  for (const [call, cls, parent, status, code, field] of cases) {
    const error = await refusal(call());
    assert.ok(error instanceof cls, `${code}: ${error}`);
    assert.ok(error instanceof parent, code);
    assert.ok(error instanceof JwtAuthError, code);
    assert.ok(!(error instanceof InvalidToken), code);
    assert.deepEqual([error.status, error.code], [status, code]);
    if (field) assert.equal(error.field, field, code);
    assert.match(error.requestId, /^[0-9a-f]{24}$/);
  }
});

test('claims may not carry the user id or the admin flag: they are arguments', async () => {
  await assert.rejects(issuer().issue('x', { claims: { userId: 'y' } }), TypeError);
  await assert.rejects(issuer().issue('x', { claims: { isAdmin: true } }), TypeError);
  assert.throws(() => new IssuerClient(services.issuerUrl, {}), TypeError);
});

test('over the rate limit: RateLimited with Retry-After, at once (a 429 is not retried)',
  async () => {
    // the "burst" client is used only here. Its bucket holds JWT_AUTH_ISSUER_RATE_LIMIT requests
    // and refills at that many a minute, so requests sent faster than that empty it: how many
    // it takes depends on the machine's speed, and five times the limit bounds the loop
    const client = new IssuerClient(services.issuerUrl, { apiKey: services.issuerBurstKey,
      retries: 3 });
    let error = null;
    for (let i = 0; i < 5 * services.issuerRateLimit && error === null; i += 1) {
      await client.issue(`node-burst-${i}`).catch((e) => { error = e; });
    }
    assert.ok(error instanceof RateLimited, `${error}`);
    assert.equal(error.status, 429);
    assert.ok(error.retryAfter >= 1, `${error.retryAfter}`);
    const lines = await waitForLines(services.issuerLog, error.requestId, 1);
    assert.equal(lines.length, 1);
    assert.deepEqual([lines[0].method, lines[0].path, lines[0].status], ['POST', '/v1/tokens', 429]);
  });

test("the caller's request id reaches the issuer's log and the error", async () => {
  const ok = requestId('issue-ok');
  const issued = await issuer().issue('node-44', { claims: services.tenant, requestId: ok });
  assert.equal(issued.requestId, ok);
  const refused = requestId('issue-refused');
  const error = await refusal(issuer('not-our-key').issue('node-44', { requestId: refused }));
  assert.equal(error.requestId, refused);
  const [okLine] = await waitForLines(services.issuerLog, ok, 1);
  const [refusedLine] = await waitForLines(services.issuerLog, refused, 1);
  assert.equal(okLine.status, 201);
  assert.equal(refusedLine.status, 401);
});
