'use strict';
// Fastify hooks: the same checks and answers as the express middleware (./express.js), as
// preHandler hooks.
//
//   const { fastifyRequireToken, fastifyRequireAdmin } = require('jwt-auth-client');
//   app.get('/me', { preHandler: fastifyRequireToken({ verifierUrl }) },
//     async (request) => request.identity);
//
// The identity is on `request.identity`; a refusal is answered by the hook (problem+json, with
// the same status, code and headers as the express middleware) and the handler never runs.
// Fastify ends the chain when an async hook returns the reply it sent.

const { guard } = require('./express');

function hook(options, admin) {
  const middleware = guard(options, admin);
  return async function jwtAuthPreHandler(request, reply) {
    // the express middleware speaks node's response API: collect what it answers instead
    const answer = { statusCode: 200, headers: {}, body: null };
    const res = {
      get statusCode() { return answer.statusCode; },
      set statusCode(value) { answer.statusCode = value; },
      setHeader(name, value) { answer.headers[name.toLowerCase()] = String(value); },
      end(body) { answer.body = body; },
    };
    await new Promise((resolve, reject) => {
      // the middleware calls next() for a good token, next(error) for a failure of ours, and
      // neither when it answered itself
      middleware(request, res, (error) => (error ? reject(error) : resolve()))
        .then(() => { if (answer.body !== null) resolve(); }, reject);
    });
    if (answer.body === null) return undefined;
    // fastify computes the length itself; the rest (type, challenge, request id) as given. A
    // Buffer, so that fastify adds no charset to the type: the express middleware's bytes
    delete answer.headers['content-length'];
    return reply.code(answer.statusCode).headers(answer.headers).send(Buffer.from(answer.body));
  };
}

/** preHandler: the route runs only for a good token, its Identity on `request.identity`. */
function fastifyRequireToken(options) {
  return hook(options, false);
}

/** Like fastifyRequireToken, and the token must be an admin's (403 admin_required otherwise). */
function fastifyRequireAdmin(options) {
  return hook(options, true);
}

module.exports = { fastifyRequireToken, fastifyRequireAdmin };
