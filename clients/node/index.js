'use strict';
// jwt-auth-client: node clients for the jwt-custom-auth verifier and issuer, their typed
// errors, express middleware and fastify hooks. No runtime dependency: node 20's fetch does
// the HTTP.

const errors = require('./lib/errors');
const { VerifierClient, IssuerClient, Session, IssuedToken } = require('./lib/clients');
const { requireToken, requireAdmin, bearer } = require('./lib/express');
const { fastifyRequireToken, fastifyRequireAdmin } = require('./lib/fastify');
const { DEFAULTS, newRequestId } = require('./lib/transport');

module.exports = {
  VerifierClient,
  IssuerClient,
  Session,
  IssuedToken,
  requireToken,
  requireAdmin,
  fastifyRequireToken,
  fastifyRequireAdmin,
  bearer,
  newRequestId,
  RETRY_DEFAULTS: DEFAULTS,
  ...errors,
};
