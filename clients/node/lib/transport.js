'use strict';
// How both clients talk HTTP: node's built-in fetch (undici, which keeps connections alive and
// reuses them), one X-Request-Id per call, and retries only where another try can help.
//
// A call is tried again only when no answer came (connection refused or reset, the per-attempt
// timeout) or the answer was 503 (the service says: not now). Any other answer, a 401 above all,
// is final at once: asking again would get the same refusal. Retries wait with exponential
// backoff and jitter, and none starts once the call's retry budget is spent, so a dead service
// costs a call at most about retryBudgetMs + timeoutMs. These are the Python client's rules and
// defaults, in milliseconds.

const crypto = require('node:crypto');
const { setTimeout: sleep } = require('node:timers/promises');
const { errorFor, ServiceUnavailable, JwtAuthError } = require('./errors');
const { version } = require('../package.json');

const USER_AGENT = `jwt-auth-client-node/${version}`;
// the ids the services keep (docs/deploy.md, request ids); they replace any other with their
// own, which would make the caller's id useless for finding the call in their logs
const ACCEPTABLE_REQUEST_ID = /^[A-Za-z0-9._:/+=@-]{1,128}$/;
// an attempt is never given less than this, even at the very end of the budget: a last try that
// cannot possibly succeed would only turn a 503 into a vaguer timeout
const MIN_ATTEMPT_MS = 50;

const DEFAULTS = Object.freeze({
  timeoutMs: 5000,
  retries: 2,
  backoffMs: 100,
  maxBackoffMs: 2000,
  retryBudgetMs: 10000,
});

/** A fresh request id in the services' own form: 24 random hex digits. */
function newRequestId() {
  return crypto.randomBytes(12).toString('hex');
}

/** The caller's id when the services would keep it, else a fresh one. */
function requestIdFor(wanted) {
  return typeof wanted === 'string' && ACCEPTABLE_REQUEST_ID.test(wanted) ? wanted : newRequestId();
}

function nonNegative(name, value) {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new TypeError(`${name} must be a number of at least 0, not ${value}`);
  }
  return value;
}

// why an attempt got no answer, in one line: undici's TypeError('fetch failed') hides the
// reason in its cause (ECONNREFUSED, ECONNRESET, UND_ERR_SOCKET, ...)
function describe(error) {
  const cause = error && error.cause ? error.cause : error;
  const code = cause && cause.code ? `${cause.code}: ` : '';
  return `${code}${(cause && cause.message) || String(cause)}`;
}

class NoAnswer extends Error {}

class Transport {
  /**
   * @param {string} baseUrl http:// or https:// URL of the service (a path prefix is kept)
   * @param {'verifier'|'issuer'} service which error table the answers are read with
   * @param {object} options timeoutMs, retries, backoffMs, maxBackoffMs, retryBudgetMs, apiKey
   */
  constructor(baseUrl, service, options = {}) {
    let url;
    try {
      url = new URL(baseUrl);
    } catch {
      url = null;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      throw new TypeError(`baseUrl must be an http:// or https:// URL, not ${JSON.stringify(baseUrl)}`);
    }
    for (const name of Object.keys(options)) {
      // a misspelt option (`timeout` for timeoutMs, as the Python client names it) would
      // otherwise be ignored without a word, and its default used
      if (!Object.hasOwn(DEFAULTS, name) && name !== 'apiKey') {
        throw new TypeError(`unknown option ${name}: the options are ${[...Object.keys(DEFAULTS), 'apiKey'].join(', ')}`);
      }
    }
    const settings = { ...DEFAULTS, ...options };
    this.baseUrl = url.origin + url.pathname.replace(/\/+$/, '');
    this.service = service;
    this.timeoutMs = nonNegative('timeoutMs', settings.timeoutMs);
    if (this.timeoutMs === 0) throw new TypeError('timeoutMs must be more than 0');
    this.retries = nonNegative('retries', settings.retries);
    if (!Number.isInteger(this.retries)) throw new TypeError('retries must be a whole number');
    this.backoffMs = nonNegative('backoffMs', settings.backoffMs);
    this.maxBackoffMs = nonNegative('maxBackoffMs', settings.maxBackoffMs);
    this.retryBudgetMs = nonNegative('retryBudgetMs', settings.retryBudgetMs);
    this.apiKey = settings.apiKey === undefined ? null : settings.apiKey;
  }

  /**
   * One call: resolves to {status, headers, body, requestId} for a 2xx answer, throws the
   * JwtAuthError subclass of the answer's problem code otherwise.
   */
  async call(method, path, { json, form, query, apiKey, requestId, signal } = {}) {
    const id = requestIdFor(requestId);
    const headers = { Accept: 'application/json', 'User-Agent': USER_AGENT, 'X-Request-Id': id };
    let body;
    if (json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(json);
    } else if (form !== undefined) {
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(form).toString();
    }
    const key = apiKey === undefined ? this.apiKey : apiKey;
    if (key) headers.Authorization = `Bearer ${key}`;
    let url = this.baseUrl + path;
    if (query) {
      const search = new URLSearchParams(query).toString();
      if (search) url += `?${search}`;
    }

    const answer = await this.attempts(method, url, headers, body, id, signal);
    if (answer.status >= 200 && answer.status < 300) {
      return { status: answer.status, headers: answer.headers, body: parse(answer), requestId: id };
    }
    throw this.problem(answer, id, answer.attempts);
  }

  async attempts(method, url, headers, body, requestId, signal) {
    const deadline = performance.now() + this.retryBudgetMs;
    for (let attempt = 1; ; attempt += 1) {
      let answer = null;
      let failure = null;
      const remaining = deadline - performance.now();
      try {
        answer = await this.send(method, url, headers, body,
          Math.max(Math.min(this.timeoutMs, remaining), MIN_ATTEMPT_MS), signal);
      } catch (error) {
        if (!(error instanceof NoAnswer)) throw error; // the caller aborted: not ours to retry
        failure = error;
      }
      if (answer !== null && answer.status !== 503) return { ...answer, attempts: attempt };
      const delay = this.delay(attempt);
      if (attempt > this.retries || performance.now() + delay > deadline) {
        if (answer !== null) return { ...answer, attempts: attempt };
        throw new ServiceUnavailable(
          `${method} ${url}: no answer after ${attempt} attempt(s): ${failure.message}`,
          { code: `${this.service}_unavailable`, requestId, attempts: attempt, cause: failure.cause });
      }
      await sleep(delay, undefined, signal ? { signal } : undefined).catch((error) => {
        throw signal && signal.aborted ? signal.reason : error;
      });
    }
  }

  delay(attempt) {
    const ceiling = Math.min(this.maxBackoffMs, this.backoffMs * 2 ** (attempt - 1));
    // jitter, between half and all of the ceiling: clients that failed together do not all
    // come back at the same instant
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  // One attempt, its body read whole (an unread body keeps the connection from going back to
  // the pool). Throws NoAnswer when no answer came, or the caller's abort reason.
  async send(method, url, headers, body, timeoutMs, signal) {
    if (signal && signal.aborted) throw signal.reason;
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    // our own controller rather than AbortSignal.any (node 20.3+): the package runs on any 20
    const onAbort = () => controller.abort(signal.reason);
    if (signal) signal.addEventListener('abort', onAbort, { once: true });
    try {
      // redirects are not followed: a token or an API key is never sent anywhere else
      const response = await fetch(url, { method, headers, body, redirect: 'manual',
        signal: controller.signal });
      const text = await response.text();
      return { status: response.status, headers: response.headers, text };
    } catch (error) {
      if (signal && signal.aborted) throw signal.reason;
      const failure = new NoAnswer(timedOut ? `no answer within ${timeoutMs} ms` : describe(error));
      failure.cause = error;
      throw failure;
    } finally {
      clearTimeout(timer);
      if (signal) signal.removeEventListener('abort', onAbort);
    }
  }

  problem(answer, requestId, attempts) {
    let document = null;
    try {
      document = answer.text ? JSON.parse(answer.text) : null;
    } catch {
      document = null;
    }
    if (document === null || typeof document !== 'object' || Array.isArray(document)) {
      document = {};
    }
    const detail = typeof document.detail === 'string' && document.detail
      ? document.detail
      : (answer.text || '').slice(0, 200) || `HTTP ${answer.status}`;
    const retryAfter = /^\d+$/.test(answer.headers.get('retry-after') || '')
      ? Number(answer.headers.get('retry-after')) : null;
    return errorFor(this.service, {
      status: answer.status,
      code: typeof document.code === 'string' ? document.code : undefined,
      detail,
      // the service answers the id it used: the one sent, unless a proxy between replaced it
      requestId: answer.headers.get('x-request-id') || requestId,
      problem: document,
      attempts,
      retryAfter,
    });
  }
}

// a 2xx body: JSON, or null when empty (204)
function parse(answer) {
  if (!answer.text) return null;
  try {
    return JSON.parse(answer.text);
  } catch {
    throw new JwtAuthError(`the ${answer.status} answer is not JSON`, {
      status: answer.status, code: 'response_invalid',
      requestId: answer.headers.get('x-request-id'),
    });
  }
}

module.exports = { Transport, DEFAULTS, newRequestId, requestIdFor, ACCEPTABLE_REQUEST_ID };
