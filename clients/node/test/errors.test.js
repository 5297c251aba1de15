'use strict';
// The error classes against the services' own list of codes (JWT_AUTH_CODES, read by pytest
// from verifier/errors.py, issuer/errors.py and shared/errors.py): a code added to a service
// without a class here fails this file.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const client = require('..');
const { services } = require('./helpers');

const {
  JwtAuthError, InvalidToken, ServiceUnavailable, VerifierUnavailable, VERIFIER_ERRORS,
  ISSUER_ERRORS, errorFor,
} = client;

for (const [service, table] of [['verifier', VERIFIER_ERRORS], ['issuer', ISSUER_ERRORS]]) {
  test(`every code the ${service} answers has its own class`, () => {
    const codes = services.codes[service];
    assert.ok(Object.keys(codes).length > 5, 'the list of codes came through');
    for (const [code, status] of Object.entries(codes)) {
      const cls = table[code];
      assert.ok(cls, `no class for the ${service}'s ${code}`);
      assert.equal(cls.code, code);
      const error = errorFor(service, { status, code, detail: 'why', requestId: 'rid-1' });
      assert.ok(error instanceof cls, code);
      assert.ok(error instanceof JwtAuthError, code);
      assert.deepEqual([error.status, error.code, error.detail, error.requestId],
        [status, code, 'why', 'rid-1']);
      // each class is exported from the package under its own name
      assert.equal(client[cls.name], cls, `${cls.name} is not exported`);
      if (status === 503) assert.ok(error instanceof ServiceUnavailable, code);
    }
  });
}

test('one class per code in each table', () => {
  for (const table of [VERIFIER_ERRORS, ISSUER_ERRORS]) {
    const classes = Object.values(table);
    assert.equal(new Set(classes).size, classes.length);
  }
});

test("the verifier's 401 token refusals are InvalidToken; session_not_found is not", () => {
  const tokenCodes = ['token_malformed', 'algorithm_not_allowed', 'signature_invalid',
    'key_unknown', 'token_expired', 'token_not_yet_valid', 'token_too_old', 'claim_missing',
    'claim_invalid', 'attributes_mismatch', 'token_revoked', 'token_missing'];
  for (const code of tokenCodes) {
    assert.ok(errorFor('verifier', { status: 401, code, detail: 'x' }) instanceof InvalidToken, code);
  }
  assert.ok(!(errorFor('verifier', { status: 404, code: 'session_not_found', detail: 'x' })
    instanceof InvalidToken));
});

test("claim_invalid is a token's claim at the verifier, the payload's at the issuer", () => {
  const atVerifier = errorFor('verifier', { status: 401, code: 'claim_invalid', detail: 'x' });
  const atIssuer = errorFor('issuer', { status: 422, code: 'claim_invalid', detail: 'x',
    problem: { code: 'claim_invalid', field: 'userId' } });
  assert.ok(atVerifier instanceof client.ClaimInvalid);
  assert.ok(atIssuer instanceof client.PayloadClaimInvalid);
  assert.ok(atIssuer instanceof client.PayloadRejected);
  assert.ok(!(atIssuer instanceof InvalidToken));
  assert.equal(atIssuer.field, 'userId');
});

test('the issuer refusing its API key is an Unauthorized, an admin payload a Forbidden', () => {
  assert.ok(new client.ApiKeyMissing('x') instanceof client.Unauthorized);
  assert.ok(new client.ApiKeyInvalid('x') instanceof client.Unauthorized);
  assert.ok(new client.AdminNotPermitted('x') instanceof client.Forbidden);
  assert.ok(new client.ExpiresInInvalid('x') instanceof client.RequestInvalid);
});

test('an unknown code is JwtAuthError itself, carrying the code', () => {
  const error = errorFor('verifier', { status: 418, code: 'brand_new_code', detail: 'new' });
  assert.equal(Object.getPrototypeOf(error), JwtAuthError.prototype);
  assert.deepEqual([error.status, error.code, error.detail], [418, 'brand_new_code', 'new']);
  const bare = errorFor('issuer', { status: 502, detail: 'Bad gateway' });
  assert.equal(bare.code, 'http_502');
  // an unknown 503 is still "come back later"
  const later = errorFor('verifier', { status: 503, code: 'brand_new_503', detail: 'later' });
  assert.ok(later instanceof ServiceUnavailable);
  assert.equal(later.code, 'brand_new_503');
});

test('an error names itself and its request id', () => {
  const error = errorFor('verifier', { status: 401, code: 'token_expired', detail: 'expired at 5',
    requestId: 'abc-123' });
  assert.equal(error.name, 'TokenExpired');
  assert.equal(error.message, 'token_expired (401): expired at 5 [request_id=abc-123]');
  assert.match(String(error), /^TokenExpired: token_expired \(401\)/);
  assert.equal(VerifierUnavailable, ServiceUnavailable);
});

test('the ES module entry exports what the CommonJS one does, the same objects', async () => {
  const esm = await import('../index.mjs');
  const names = Object.keys(esm).filter((name) => name !== 'default').sort();
  assert.deepEqual(names, Object.keys(client).sort());
  for (const name of names) assert.equal(esm[name], client[name], name);
  assert.equal(esm.default, client);
});

test('every export is declared in index.d.ts, and nothing more', () => {
  // read with the TypeScript compiler (a devDependency): the declared exports of the module
  const ts = require('typescript');
  const file = path.join(__dirname, '..', 'index.d.ts');
  const program = ts.createProgram([file], { strict: true, noEmit: true, types: [] });
  const checker = program.getTypeChecker();
  const symbol = checker.getSymbolAtLocation(program.getSourceFile(file));
  const declared = checker.getExportsOfModule(symbol)
    .filter((exported) => exported.flags & ts.SymbolFlags.Value)
    .map((exported) => exported.name).sort();
  assert.deepEqual(declared, Object.keys(client).sort());
});
