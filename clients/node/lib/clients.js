'use strict';
// VerifierClient and IssuerClient: the two services' HTTP APIs as promise-returning methods.
//
// Every method takes `{ requestId, signal }` last: `requestId` is sent as X-Request-Id (the
// service logs the call under it; a missing or unacceptable one is replaced by a fresh id), and
// `signal` (an AbortSignal) cancels the call, retries included, with the signal's reason.

const util = require('node:util');
const { Transport } = require('./transport');
const { JwtAuthError } = require('./errors');

function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function requireString(name, value) {
  if (typeof value !== 'string') throw new TypeError(`${name} must be a string, not ${typeof value}`);
  return value;
}

function invalidAnswer(what, answer) {
  return new JwtAuthError(`the answer is not ${what}`, {
    status: answer.status, code: 'response_invalid', requestId: answer.requestId,
  });
}

// the secret member of an object, kept out of console.log and util.inspect (JSON.stringify
// still has it: serializing on purpose is the caller's choice)
function redacting(secret) {
  return function inspect(depth, options, inspectFn = util.inspect) {
    const shown = { ...this, [secret]: '<redacted>' };
    return `${this.constructor.name} ${inspectFn(shown, options)}`;
  };
}

/** A server-side session (`POST /v1/sessions`, `GET /v1/sessions/<id>`). */
class Session {
  constructor(body, sessionId) {
    this.sessionId = String(body.sessionId || sessionId || '');
    this.userId = String(body.userId);
    this.isAdmin = body.isAdmin === true;
    this.provider = String(body.provider);
    this.createdAt = Number(body.createdAt);
    this.expiresAt = Number(body.expiresAt);
  }
}
Session.prototype[util.inspect.custom] = redacting('sessionId');

/** A token the issuer signed (`POST /v1/tokens`). */
class IssuedToken {
  constructor(body, requestId) {
    this.token = String(body.token);
    this.tokenType = String(body.tokenType);
    // null when the issuer signs tokens without exp (ISSUER_TOKEN_TTL=0)
    this.expiresAt = typeof body.expiresAt === 'number' ? body.expiresAt : null;
    this.jti = String(body.jti);
    this.kid = String(body.kid);
    this.requestId = requestId;
  }
}
IssuedToken.prototype[util.inspect.custom] = redacting('token');

// the identity of a good token, as POST /v1/verify answers it
function identity(answer) {
  const body = answer.body;
  if (!isObject(body) || typeof body.userId !== 'string' || !isObject(body.claims)) {
    throw invalidAnswer('an identity', answer);
  }
  return {
    userId: body.userId,
    // strictly true: the verifier already applied JWT_IS_ADMIN_VALUE and answers a boolean
    isAdmin: body.isAdmin === true,
    provider: String(body.provider),
    claims: body.claims,
    issuedAt: typeof body.issuedAt === 'number' ? body.issuedAt : null,
    expiresAt: typeof body.expiresAt === 'number' ? body.expiresAt : null,
    // false only in VERIFIER_REDIS_FAILURE_MODE=open with Redis down
    revocationChecked: body.revocationChecked !== false,
  };
}

function session(answer, sessionId) {
  const body = answer.body;
  if (!isObject(body) || typeof body.userId !== 'string') throw invalidAnswer('a session', answer);
  return new Session(body, sessionId);
}

// a path segment: session ids carry a `~`, which encodeURIComponent leaves as it is
function segment(value) {
  return encodeURIComponent(requireString('sessionId', value));
}

function pick(options) {
  return { requestId: options.requestId, signal: options.signal };
}

class VerifierClient {
  /**
   * @param {string} baseUrl the verifier, e.g. http://127.0.0.1:8002
   * @param {object} [options] timeoutMs (per attempt, 5000), retries (2), backoffMs (100),
   *   maxBackoffMs (2000), retryBudgetMs (10000), apiKey (a key of VERIFIER_CLIENT_KEYS_FILE,
   *   for introspect)
   */
  constructor(baseUrl, options = {}) {
    this.transport = new Transport(baseUrl, 'verifier', options);
  }

  get baseUrl() {
    return this.transport.baseUrl;
  }

  /** Who the token names; rejects with the JwtAuthError subclass of the refusal's code. */
  async verify(token, options = {}) {
    const answer = await this.transport.call('POST', '/v1/verify', {
      json: { token: requireString('token', token) }, apiKey: null, ...pick(options) });
    return identity(answer);
  }

  /**
   * RFC 7662 introspection: `{active: false}` for any token that is not good, or `{active:
   * true, sub, userId, isAdmin, ...}`. Needs an API key (the constructor's `apiKey`, or this
   * call's); a missing or unknown one rejects with Unauthorized.
   */
  async introspect(token, options = {}) {
    const answer = await this.transport.call('POST', '/v1/introspect', {
      form: { token: requireString('token', token) }, apiKey: options.apiKey, ...pick(options) });
    if (!isObject(answer.body) || typeof answer.body.active !== 'boolean') {
      throw invalidAnswer('an introspection', answer);
    }
    return answer.body;
  }

  /** Verify the token and open a server-side session for its user. */
  async login(token, options = {}) {
    const answer = await this.transport.call('POST', '/v1/sessions', {
      json: { token: requireString('token', token) }, apiKey: null, ...pick(options) });
    return session(answer);
  }

  /** The live session with this id; rejects with SessionNotFound when it ended or never was. */
  async session(sessionId, options = {}) {
    const answer = await this.transport.call('GET', `/v1/sessions/${segment(sessionId)}`, {
      apiKey: null, ...pick(options) });
    return session(answer, sessionId);
  }

  /** End the session (idempotent: no error when it had already ended). */
  async logout(sessionId, options = {}) {
    await this.transport.call('DELETE', `/v1/sessions/${segment(sessionId)}`, {
      apiKey: null, ...pick(options) });
  }

  /** Revoke the token: every verifier refuses it from now on with TokenRevoked. */
  async revoke(token, options = {}) {
    await this.transport.call('POST', '/v1/revocations', {
      json: { token: requireString('token', token) }, apiKey: null, ...pick(options) });
  }
}

class IssuerClient {
  /**
   * @param {string} baseUrl the issuer, e.g. http://127.0.0.1:8001
   * @param {object} options apiKey (required: the client key `jwt-auth clients add` printed),
   *   userIdField ('userId'), isAdminField ('isAdmin'), and the retry options of VerifierClient
   */
  constructor(baseUrl, options = {}) {
    const { userIdField = 'userId', isAdminField = 'isAdmin', ...rest } = options;
    if (typeof rest.apiKey !== 'string' || !rest.apiKey) {
      throw new TypeError('IssuerClient: apiKey is required (the key `jwt-auth clients add` printed)');
    }
    this.transport = new Transport(baseUrl, 'issuer', rest);
    // the payload's field names, as JWT_USER_ID_FIELD and JWT_IS_ADMIN_FIELD set them
    this.userIdField = userIdField;
    this.isAdminField = isAdminField;
  }

  get baseUrl() {
    return this.transport.baseUrl;
  }

  /**
   * A token for the user: `claims` are the token's other properties, `isAdmin` the admin flag
   * (only an admin client may set it true), `expiresIn` its lifetime in seconds instead of
   * the issuer's ISSUER_TOKEN_TTL.
   */
  async issue(userId, options = {}) {
    const { isAdmin, claims = {}, expiresIn } = options;
    if (!isObject(claims)) throw new TypeError('claims must be an object');
    for (const field of [this.userIdField, this.isAdminField]) {
      // refused, not overwritten: a caller who put it in claims meant something by it
      if (Object.hasOwn(claims, field)) {
        throw new TypeError(`claims must not hold ${field}: pass it as the argument of its own`);
      }
    }
    const payload = { [this.userIdField]: userId, ...claims };
    if (isAdmin !== undefined) payload[this.isAdminField] = isAdmin;
    const answer = await this.transport.call('POST', '/v1/tokens', {
      json: payload,
      query: expiresIn === undefined ? undefined : { expires_in: String(expiresIn) },
      apiKey: options.apiKey,
      ...pick(options),
    });
    if (!isObject(answer.body) || typeof answer.body.token !== 'string') {
      throw invalidAnswer('an issued token', answer);
    }
    return new IssuedToken(answer.body, answer.requestId);
  }
}

module.exports = { VerifierClient, IssuerClient, Session, IssuedToken };
