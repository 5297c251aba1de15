'use strict';
// Express middleware: a route runs only for a request whose bearer token the verifier accepts.
//
//   const { requireToken, requireAdmin } = require('jwt-auth-client');
//   app.get('/me', requireToken({ verifierUrl }), (req, res) => res.json(req.identity));
//   app.delete('/users/:id', requireAdmin({ verifierUrl }), handler);
//
// The caller's identity is on `req.identity` (the Identity VerifierClient.verify resolves to).
// The incoming X-Request-Id is passed on to the verifier, so the app's request and the
// verifier's check of its token share one id. Instead of calling the route it answers, always as
// application/problem+json with a `code` (the Python client's integrations answer the same):
//
//   401 token_missing, WWW-Authenticate: Bearer                 no bearer token
//   401 <the verifier's code>, WWW-Authenticate: Bearer error="invalid_token"
//                                                               the verifier refused the token
//   403 admin_required, WWW-Authenticate: Bearer error="insufficient_scope"
//                                                               requireAdmin, not an admin
//   503 <verifier_unavailable|store_unavailable|not_ready>, Retry-After
//                                                               no answer after the retries, or 503
//   502 verifier_error                                          the verifier failed otherwise (500)
//
// It fails closed: no request reaches a protected route unless the verifier said yes. Only
// node's own http API is used on `res` (statusCode, setHeader, end), so it runs under express,
// connect, or a bare http.Server alike.

const { VerifierClient } = require('./clients');
const { JwtAuthError, ServiceUnavailable } = require('./errors');

const PROBLEM_TYPE = 'https://jwt-custom-auth.dev/problems/';
// the identities this module got from the verifier: a later requireAdmin trusts only these,
// never a req.identity some other middleware may have set
const VERIFIED = new WeakSet();

function header(req, name) {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The credential of `Authorization: Bearer <credential>`, or null. */
function bearer(authorization) {
  if (typeof authorization !== 'string') return null;
  const match = /^\s*bearer\s+(\S(?:.*\S)?)\s*$/i.exec(authorization);
  return match ? match[1] : null;
}

function challenge(realm, error) {
  const parts = [];
  if (realm) parts.push(`realm="${realm}"`);
  if (error) parts.push(`error="${error}"`);
  return parts.length ? `Bearer ${parts.join(', ')}` : 'Bearer';
}

function send(res, { status, code, title, detail, headers = {}, requestId = null }) {
  const body = JSON.stringify({
    type: PROBLEM_TYPE + code.replace(/_/g, '-'), title, status, detail, code,
  });
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/problem+json');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.setHeader('Cache-Control', 'no-store');
  // the id the verifier logged its check under: the caller can quote it
  if (requestId) res.setHeader('X-Request-Id', requestId);
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.end(body);
}

/** The answer for an error the verifier call rejected with. */
function refusal(error, realm) {
  const requestId = error.requestId;
  if (error instanceof ServiceUnavailable) {
    return { status: 503, code: error.code, title: 'Verifier unavailable', requestId,
      detail: 'The token could not be checked now; try again shortly.',
      headers: { 'Retry-After': String(error.retryAfter || 1) } };
  }
  if (error.status >= 500 || error.status === 0) {
    return { status: 502, code: 'verifier_error', title: 'Verifier error', requestId,
      detail: 'The token could not be checked.' };
  }
  // a 401 (the token refused), or a 4xx about the token itself (too large for the verifier)
  return { status: 401, code: error.code, title: 'Invalid token', detail: error.detail, requestId,
    headers: { 'WWW-Authenticate': challenge(realm, 'invalid_token') } };
}

function clientFrom(options) {
  if (options instanceof VerifierClient) return options;
  if (options.client) {
    const extra = Object.keys(options).filter((name) => name !== 'client' && name !== 'realm');
    if (extra.length) {
      throw new TypeError(`requireToken: ${extra.join(', ')} would be ignored: set them on the client`);
    }
    return options.client;
  }
  const { verifierUrl, realm, ...rest } = options;
  if (!verifierUrl) {
    throw new TypeError('requireToken: pass { client } or { verifierUrl } (e.g. http://127.0.0.1:8002)');
  }
  return new VerifierClient(verifierUrl, rest);
}

function guard(options, admin) {
  const client = clientFrom(options || {});
  const realm = (options && !(options instanceof VerifierClient) && options.realm) || null;

  return async function jwtAuth(req, res, next) {
    // verified already on this request (requireToken, then requireAdmin): no second call
    let identity = req.identity;
    if (!identity || !VERIFIED.has(identity)) {
      const token = bearer(header(req, 'authorization'));
      if (token === null) {
        // RFC 6750 3.1: no credentials at all, so no error attribute
        send(res, { status: 401, code: 'token_missing', title: 'Authentication required',
          detail: 'Send a token as Authorization: Bearer <token>.',
          headers: { 'WWW-Authenticate': challenge(realm) } });
        return;
      }
      try {
        identity = await client.verify(token, { requestId: header(req, 'x-request-id') });
      } catch (error) {
        if (error instanceof JwtAuthError) {
          send(res, refusal(error, realm));
        } else {
          next(error);
        }
        return;
      }
      VERIFIED.add(identity);
      req.identity = identity;
    }
    if (admin && identity.isAdmin !== true) {
      send(res, { status: 403, code: 'admin_required', title: 'Forbidden',
        detail: 'This needs an admin token.',
        headers: { 'WWW-Authenticate': challenge(realm, 'insufficient_scope') } });
      return;
    }
    next();
  };
}

/**
 * Middleware: the route runs only for a good token, with its Identity on `req.identity`.
 * `options`: a VerifierClient, or `{ client }`, or `{ verifierUrl, ...VerifierClient options }`;
 * `realm` names the realm in WWW-Authenticate (none by default).
 */
function requireToken(options) {
  return guard(options, false);
}

/** Like requireToken, and the token must be an admin's (403 admin_required otherwise). */
function requireAdmin(options) {
  return guard(options, true);
}

module.exports = { requireToken, requireAdmin, bearer, guard };
