'use strict';
// What the node tests share: the services pytest started (tests/client/test_node_client.py
// hands them over in JWT_AUTH_* variables), their access log lines, and bounded waits.
//
// Run through pytest (`.venv/bin/python -m pytest tests/client/test_node_client.py`): on their
// own, without those variables, the tests that need a service fail with a line saying so.

const fs = require('node:fs');
const net = require('node:net');
const { setTimeout: sleep } = require('node:timers/promises');

function env(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run these tests through `
      + 'pytest tests/client/test_node_client.py, which starts the services');
  }
  return value;
}

const services = {
  get verifierUrl() { return env('JWT_AUTH_VERIFIER_URL'); },
  get issuerUrl() { return env('JWT_AUTH_ISSUER_URL'); },
  get issuerKey() { return env('JWT_AUTH_ISSUER_KEY'); },
  get issuerAdminKey() { return env('JWT_AUTH_ISSUER_ADMIN_KEY'); },
  get issuerBurstKey() { return env('JWT_AUTH_ISSUER_BURST_KEY'); },
  get issuerRateLimit() { return Number(env('JWT_AUTH_ISSUER_RATE_LIMIT')); },
  get introspectKey() { return env('JWT_AUTH_INTROSPECT_KEY'); },
  get verifierLog() { return env('JWT_AUTH_VERIFIER_LOG'); },
  get issuerLog() { return env('JWT_AUTH_ISSUER_LOG'); },
  // the claims the verifier requires of every token (VERIFIER_REQUIRED_ATTRIBUTES)
  get tenant() { return JSON.parse(env('JWT_AUTH_TENANT')); },
  get tokens() { return JSON.parse(env('JWT_AUTH_TOKENS')); },
  get codes() { return JSON.parse(env('JWT_AUTH_CODES')); },
};

/**
 * The access lines a service logged under this request id, each as {method, path, status}:
 * `127.0.0.1 "POST /v1/verify" 401 182 1ms request_id=<id>` (docs/deploy.md). gunicorn writes
 * the line after the answer, so a caller waits for them with waitForLines.
 */
function accessLines(logPath, requestId) {
  const pattern = /^127\.0\.0\.1 "(\S+) (\S+)" (\d{3}) \S+ \S+ request_id=(\S+)$/;
  const found = [];
  for (const line of fs.readFileSync(logPath, 'utf8').split('\n')) {
    const match = pattern.exec(line);
    if (match && match[4] === requestId) {
      found.push({ method: match[1], path: match[2], status: Number(match[3]) });
    }
  }
  return found;
}

/** Poll `check` every 50 ms until it returns something truthy; fail after `timeoutMs`. */
async function waitFor(check, { timeoutMs = 10000, what = 'a condition' } = {}) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** Exactly `count` access lines for the id (waiting for them), returned. */
async function waitForLines(logPath, requestId, count) {
  let lines = [];
  await waitFor(() => {
    lines = accessLines(logPath, requestId);
    return lines.length >= count;
  }, { what: `${count} access line(s) with request_id=${requestId} in ${logPath}` });
  return lines;
}

/** A port on 127.0.0.1 that nothing listens on right now. */
async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * A TCP server on 127.0.0.1 that reads each request's head and then either never answers
 * ('hang') or closes the connection ('close'): a service that is wedged, or dies mid-request.
 * Counts the request lines it received, which is what a retry is; how many connections node's
 * fetch opens for them is its own business. Not a stand-in for a service: it answers nothing.
 */
async function silentServer(mode) {
  const sockets = new Set();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let seen = '';
    socket.on('data', (chunk) => {
      seen += chunk.toString('latin1');
      const lines = seen.split(' HTTP/1.1\r\n');
      server.requests += lines.length - 1;
      seen = lines[lines.length - 1];
      if (mode === 'close' && lines.length > 1) socket.destroy();
    });
  });
  server.requests = 0;
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  server.url = `http://127.0.0.1:${server.address().port}`;
  server.stop = async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  };
  return server;
}

/**
 * A TCP proxy on 127.0.0.1 to `targetUrl` that counts the connections clients open through it:
 * what is asserted about connection reuse is what crossed the wire.
 */
async function countingProxy(targetUrl) {
  const target = new URL(targetUrl);
  const sockets = new Set();
  const server = net.createServer((downstream) => {
    server.connections += 1;
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const socket of [downstream, upstream]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => {
        sockets.delete(socket);
        downstream.destroy();
        upstream.destroy();
      });
    }
    downstream.pipe(upstream);
    upstream.pipe(downstream);
  });
  server.connections = 0;
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  server.url = `http://127.0.0.1:${server.address().port}`;
  server.stop = async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  };
  return server;
}

/** A unique id for one test's call, in the form the services keep. */
function requestId(label) {
  return `node-${label}-${process.pid}-${Date.now()}`;
}

module.exports = {
  services, accessLines, waitFor, waitForLines, freePort, silentServer, countingProxy, requestId,
};
