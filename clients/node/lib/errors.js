'use strict';
// One error class per problem `code` the services answer, all under JwtAuthError.
//
// The codes are the services' stable contract (verifier/errors.py, issuer/errors.py,
// shared/errors.py, and docs/verifier.md, docs/issuer.md). The tree mirrors the Python client's
// (clients/python/jwt_auth_client/errors.py) so both clients are read the same way. A code this
// package does not know yet is thrown as JwtAuthError itself, carrying that code, so a newer
// service never breaks an older client: callers branch on `instanceof` or on `.code`.
//
// Codes are looked up per service: the verifier's `claim_invalid` is a 401 about a token's
// claim (ClaimInvalid, an InvalidToken), the issuer's a 422 about the payload it was asked to
// sign (PayloadClaimInvalid). One table for both would give one of them the wrong class.

class JwtAuthError extends Error {
  /**
   * @param {string} detail the problem's human-readable `detail`
   * @param {object} [options]
   * @param {number} [options.status] HTTP status; 0 when no answer came
   * @param {string} [options.code] the problem's code; the class's own when left out
   * @param {string|null} [options.requestId] the X-Request-Id of the call
   * @param {object} [options.problem] the whole problem document, as answered
   * @param {unknown} [options.cause] what failed underneath (a connection error)
   */
  constructor(detail, { status = 0, code, requestId = null, problem = {}, cause } = {}) {
    const ownCode = code || new.target.code;
    const text = `${ownCode} (${status}): ${detail}`;
    super(requestId ? `${text} [request_id=${requestId}]` : text,
      cause === undefined ? undefined : { cause });
    this.name = new.target.name;
    this.code = ownCode;
    this.status = status;
    this.detail = detail;
    this.requestId = requestId;
    this.problem = problem;
    // the member that was at fault, when the service named one (the issuer does)
    this.field = typeof problem.field === 'string' ? problem.field : null;
  }
}
JwtAuthError.code = 'jwt_auth_error';

// define(name, code, parent): a class whose `name` is the given one, so stack traces and
// `error.name` read `TokenExpired: ...`, not an anonymous class
function define(name, code, parent, extra) {
  const made = { [name]: class extends parent {} }[name];
  made.code = code;
  if (extra) extra(made);
  return made;
}

/** No usable answer after the retries: the connection failed, timed out, or the answer was 503. */
class ServiceUnavailable extends JwtAuthError {
  constructor(detail, options = {}) {
    super(detail, options);
    this.attempts = options.attempts || 1;
    // the service's Retry-After in seconds, when its 503 carried one
    this.retryAfter = options.retryAfter ?? null;
  }
}
ServiceUnavailable.code = 'service_unavailable';

const StoreUnavailable = define('StoreUnavailable', 'store_unavailable', ServiceUnavailable);
const NotReady = define('NotReady', 'not_ready', ServiceUnavailable);

const InvalidToken = define('InvalidToken', 'token_invalid', JwtAuthError);
const TokenMalformed = define('TokenMalformed', 'token_malformed', InvalidToken);
const AlgorithmNotAllowed = define('AlgorithmNotAllowed', 'algorithm_not_allowed', InvalidToken);
const SignatureInvalid = define('SignatureInvalid', 'signature_invalid', InvalidToken);
const KeyUnknown = define('KeyUnknown', 'key_unknown', InvalidToken);
const TokenExpired = define('TokenExpired', 'token_expired', InvalidToken);
const TokenNotYetValid = define('TokenNotYetValid', 'token_not_yet_valid', InvalidToken);
const TokenTooOld = define('TokenTooOld', 'token_too_old', InvalidToken);
const ClaimMissing = define('ClaimMissing', 'claim_missing', InvalidToken);
const ClaimInvalid = define('ClaimInvalid', 'claim_invalid', InvalidToken);
const AttributesMismatch = define('AttributesMismatch', 'attributes_mismatch', InvalidToken);
const IssuerUnknown = define('IssuerUnknown', 'issuer_unknown', InvalidToken);
const TokenRevoked = define('TokenRevoked', 'token_revoked', InvalidToken);
const TokenMissing = define('TokenMissing', 'token_missing', InvalidToken);

// 404 from GET /v1/sessions/<id>, 401 from forward-auth: not an InvalidToken, as in Python
const SessionNotFound = define('SessionNotFound', 'session_not_found', JwtAuthError);
const UserNotFound = define('UserNotFound', 'user_not_found', JwtAuthError);

/** 429 from the verifier's login; `retryAfter` is its Retry-After in seconds (or null). */
class LoginRateExceeded extends JwtAuthError {
  constructor(detail, options = {}) {
    super(detail, options);
    this.retryAfter = options.retryAfter ?? null;
  }
}
LoginRateExceeded.code = 'login_rate_exceeded';

/** 429 from the issuer: the client is over ISSUER_RATE_LIMIT; `retryAfter` in seconds. */
class RateLimited extends JwtAuthError {
  constructor(detail, options = {}) {
    super(detail, options);
    this.retryAfter = options.retryAfter ?? null;
  }
}
RateLimited.code = 'rate_limited';

const RequestInvalid = define('RequestInvalid', 'request_invalid', JwtAuthError);
const ExpiresInInvalid = define('ExpiresInInvalid', 'expires_in_invalid', RequestInvalid);
// every "your API key was not accepted" is an Unauthorized: the verifier's (introspection,
// admin routes) and the issuer's two more precise ones
const Unauthorized = define('Unauthorized', 'unauthorized', JwtAuthError);
const ApiKeyMissing = define('ApiKeyMissing', 'api_key_missing', Unauthorized);
const ApiKeyInvalid = define('ApiKeyInvalid', 'api_key_invalid', Unauthorized);
const Forbidden = define('Forbidden', 'forbidden', JwtAuthError);
const AdminNotPermitted = define('AdminNotPermitted', 'admin_not_permitted', Forbidden);
// 422 from the issuer: its claim schema refused the payload (`field` names the member)
const PayloadRejected = define('PayloadRejected', 'payload_rejected', JwtAuthError);
const PayloadClaimInvalid = define('PayloadClaimInvalid', 'claim_invalid', PayloadRejected);
const ClaimReserved = define('ClaimReserved', 'claim_reserved', PayloadRejected);
const KeyNotFound = define('KeyNotFound', 'key_not_found', JwtAuthError);
const NotFound = define('NotFound', 'not_found', JwtAuthError);
const MethodNotAllowed = define('MethodNotAllowed', 'method_not_allowed', JwtAuthError);
const PayloadTooLarge = define('PayloadTooLarge', 'payload_too_large', JwtAuthError);
const UnsupportedMediaType = define('UnsupportedMediaType', 'unsupported_media_type', JwtAuthError);
const InternalError = define('InternalError', 'internal_error', JwtAuthError);

function table(classes) {
  return Object.freeze(Object.fromEntries(classes.map((cls) => [cls.code, cls])));
}

// what either service may answer (shared/errors.py)
const SHARED = [RequestInvalid, Unauthorized, Forbidden, NotFound, MethodNotAllowed,
  PayloadTooLarge, UnsupportedMediaType, NotReady, InternalError];

/** The verifier's codes, each to its class. */
const VERIFIER_ERRORS = table([...SHARED, InvalidToken, TokenMalformed, AlgorithmNotAllowed, SignatureInvalid,
  KeyUnknown, TokenExpired, TokenNotYetValid, TokenTooOld, ClaimMissing, ClaimInvalid,
  AttributesMismatch, IssuerUnknown, TokenRevoked, TokenMissing, SessionNotFound, UserNotFound,
  LoginRateExceeded, StoreUnavailable]);

/** The issuer's codes, each to its class. */
const ISSUER_ERRORS = table([...SHARED, ApiKeyMissing, ApiKeyInvalid, AdminNotPermitted,
  RateLimited, ExpiresInInvalid, PayloadClaimInvalid, ClaimReserved, KeyNotFound]);

const TABLES = { verifier: VERIFIER_ERRORS, issuer: ISSUER_ERRORS };

/**
 * The error for a problem answer of `service` ('verifier' or 'issuer'): its code's class, a
 * ServiceUnavailable for an unknown code on a 503, else JwtAuthError itself with the code.
 */
function errorFor(service, { status, code, detail, requestId = null, problem = {},
  attempts = 1, retryAfter = null }) {
  const known = TABLES[service];
  if (!known) throw new TypeError(`errorFor: service must be 'verifier' or 'issuer', not ${service}`);
  const options = { status, requestId, problem, attempts, retryAfter };
  const cls = typeof code === 'string' && Object.hasOwn(known, code) ? known[code] : null;
  if (cls) return new cls(detail, options);
  if (status === 503) {
    return new ServiceUnavailable(detail, { ...options, code: code || `${service}_unavailable` });
  }
  return new JwtAuthError(detail, { ...options, code: code || `http_${status}` });
}

module.exports = {
  JwtAuthError,
  ServiceUnavailable,
  // the Python client's name for it: the verifier's "no answer, or 503" is caught the same way
  VerifierUnavailable: ServiceUnavailable,
  StoreUnavailable,
  NotReady,
  InvalidToken,
  TokenMalformed,
  AlgorithmNotAllowed,
  SignatureInvalid,
  KeyUnknown,
  TokenExpired,
  TokenNotYetValid,
  TokenTooOld,
  ClaimMissing,
  ClaimInvalid,
  AttributesMismatch,
  IssuerUnknown,
  TokenRevoked,
  TokenMissing,
  SessionNotFound,
  UserNotFound,
  LoginRateExceeded,
  RateLimited,
  RequestInvalid,
  ExpiresInInvalid,
  Unauthorized,
  ApiKeyMissing,
  ApiKeyInvalid,
  Forbidden,
  AdminNotPermitted,
  PayloadRejected,
  PayloadClaimInvalid,
  ClaimReserved,
  KeyNotFound,
  NotFound,
  MethodNotAllowed,
  PayloadTooLarge,
  UnsupportedMediaType,
  InternalError,
  VERIFIER_ERRORS,
  ISSUER_ERRORS,
  errorFor,
};
