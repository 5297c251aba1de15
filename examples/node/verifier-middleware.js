'use strict';
// Express middleware that asks the jwt-custom-auth verifier whether a request's bearer token is
// good (POST /v1/verify) and puts the answer on req.identity. Node 20's built-in fetch (undici)
// keeps connections to the verifier alive, so a busy app does not open one per request.
//
//   const { requireToken, requireAdmin } = require('./verifier-middleware');
//   const options = { verifierUrl: 'http://127.0.0.1:8002', timeoutMs: 2000 };
//   app.get('/me', requireToken(options), (req, res) => res.json(req.identity));
//   app.get('/admin', requireAdmin(options), handler);
//
// Answers it gives instead of calling the route (all application/problem+json with a `code`):
//   401 + WWW-Authenticate   no bearer token, or the verifier refused it (its own problem document
//                            and code: token_expired, signature_invalid, token_revoked, ...)
//   403 forbidden            requireAdmin, and the verified user is not an admin
//   503 + Retry-After        the verifier is unreachable, too slow or answers 503 (fail closed)

const PROBLEM_TYPE = 'application/problem+json';
const DEFAULT_RETRY_AFTER = '5';

function problem(res, status, code, title, detail, headers = {}) {
  res.status(status).set(headers).type(PROBLEM_TYPE).send(JSON.stringify({
    type: `https://jwt-custom-auth.dev/problems/${code.replace(/_/g, '-')}`,
    title,
    status,
    detail,
    code,
  }));
}

function bearerToken(req) {
  const header = req.get('authorization') || '';
  const match = /^Bearer[ ]+([^ ]+)[ ]*$/i.exec(header);
  return match ? match[1] : null;
}

function unavailable(res, detail, retryAfter) {
  problem(res, 503, 'verifier_unavailable', 'Verifier unavailable', detail, {
    'Retry-After': retryAfter || DEFAULT_RETRY_AFTER,
  });
}

// Ask the verifier; resolves to {status, headers, body} (body parsed JSON or null). Rejects when
// the verifier cannot be reached or does not answer within timeoutMs (body included).
async function askVerifier(verifyUrl, token, timeoutMs) {
  const response = await fetch(verifyUrl, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ token }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  // always read the body: an unread body keeps the connection from going back to the pool
  const text = await response.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  return { status: response.status, headers: response.headers, body };
}

function requireToken({ verifierUrl, timeoutMs = 2000 } = {}) {
  if (!verifierUrl) {
    throw new TypeError('requireToken: verifierUrl is required (e.g. http://127.0.0.1:8002)');
  }
  const verifyUrl = new URL('/v1/verify', verifierUrl).toString();

  return async function verifierToken(req, res, next) {
    const token = bearerToken(req);
    if (token === null) {
      // RFC 6750 3.1: no credentials at all, so no error attribute
      problem(res, 401, 'token_missing', 'Invalid token',
        'Send the token as Authorization: Bearer <token>.', { 'WWW-Authenticate': 'Bearer' });
      return;
    }
    let answer;
    try {
      answer = await askVerifier(verifyUrl, token, timeoutMs);
    } catch (error) {
      const why = error && error.name === 'TimeoutError'
        ? `no answer within ${timeoutMs} ms` : 'it could not be reached';
      unavailable(res, `The token could not be checked: the verifier gave ${why}.`);
      return;
    }
    const { status, headers, body } = answer;
    if (status === 200 && body && typeof body.userId === 'string') {
      req.identity = {
        userId: body.userId,
        isAdmin: body.isAdmin === true,
        provider: body.provider,
        claims: body.claims,
      };
      next();
      return;
    }
    if ((status === 401 || status === 403) && body && typeof body.code === 'string') {
      // the verifier's own problem document: clients branch on its code
      res.status(status).type(PROBLEM_TYPE);
      if (status === 401) res.set('WWW-Authenticate', 'Bearer error="invalid_token"');
      res.send(JSON.stringify(body));
      return;
    }
    // 503 (store_unavailable, not ready) or anything unexpected: fail closed, retry later
    unavailable(res, `The token could not be checked: the verifier answered ${status}.`,
      status === 503 ? headers.get('retry-after') : null);
  };
}

function requireAdmin(options) {
  const verify = requireToken(options);
  return function verifierAdmin(req, res, next) {
    const check = (error) => {
      if (error) {
        next(error);
      } else if (req.identity.isAdmin !== true) {
        problem(res, 403, 'forbidden', 'Forbidden', 'This route is for admins only.');
      } else {
        next();
      }
    };
    // already verified by an earlier requireToken on this request: do not ask again
    if (req.identity) check();
    else verify(req, res, check);
  };
}

module.exports = { requireToken, requireAdmin };
