// How an app in TypeScript uses the package as an ES module; compiled, never run (tsc --noEmit).
// Every line that should not compile carries @ts-expect-error: if it compiled, tsc would fail.
import express from 'express';
import Fastify from 'fastify';
import client, {
  VerifierClient, IssuerClient, JwtAuthError, InvalidToken, TokenExpired, ServiceUnavailable,
  VerifierUnavailable, StoreUnavailable, LoginRateExceeded, RateLimited, PayloadRejected,
  requireToken, requireAdmin, fastifyRequireToken, fastifyRequireAdmin, VERIFIER_ERRORS, errorFor,
} from 'jwt-auth-client';
import type { Identity, IssuedToken, Introspection, Session } from 'jwt-auth-client';

const verifier = new VerifierClient('http://127.0.0.1:8002', { timeoutMs: 2000, retries: 1 });
const issuer = new IssuerClient('http://127.0.0.1:8001', { apiKey: 'key' });

export async function flow(token: string, signal: AbortSignal): Promise<string> {
  const identity: Identity = await verifier.verify(token, { requestId: 'abc', signal });
  const admin: boolean = identity.isAdmin;
  const expires: number | null = identity.expiresAt;
  const issued: IssuedToken = await issuer.issue(identity.userId, {
    isAdmin: admin, claims: { plan: 'gold' }, expiresIn: 600, requestId: 'abc' });
  const session: Session = await verifier.login(issued.token);
  await verifier.logout(session.sessionId);
  await verifier.revoke(issued.token);
  const state: Introspection = await verifier.introspect(token, { apiKey: 'k' });
  if (state.active) {
    const sub: string = state.sub;
    void sub;
  }
  // @ts-expect-error: a user id is a string
  await issuer.issue(42);
  // @ts-expect-error: the issuer needs its API key
  void new IssuerClient('http://127.0.0.1:8001', {});
  return `${expires}`;
}

export function explain(error: unknown): string {
  if (error instanceof TokenExpired) return `${error.code} ${error.status} ${error.requestId}`;
  if (error instanceof InvalidToken) return error.detail;
  if (error instanceof ServiceUnavailable) return `${error.attempts} ${error.retryAfter}`;
  if (error instanceof VerifierUnavailable) return 'the same class';
  if (error instanceof StoreUnavailable) return 'a ServiceUnavailable';
  if (error instanceof LoginRateExceeded || error instanceof RateLimited) {
    return `${error.retryAfter ?? 1}`;
  }
  if (error instanceof PayloadRejected) return `${error.field}`;
  if (error instanceof JwtAuthError) return `${error.problem.title}`;
  return String(error);
}

const unknown: JwtAuthError = errorFor('verifier', { status: 418, code: 'new', detail: 'x' });
const cls: typeof JwtAuthError | undefined = VERIFIER_ERRORS.token_expired;
void unknown;
void cls;
void client.VerifierClient;

const app = express();
app.get('/me', requireToken({ client: verifier }), (req, res) => {
  // the identity, typed on express's own Request
  const who: Identity | undefined = req.identity;
  res.json({ userId: who?.userId });
});
app.delete('/users/:id', requireAdmin({ verifierUrl: 'http://127.0.0.1:8002', realm: 'api' }),
  (req, res) => {
    res.json({ by: req.identity?.userId, id: req.params.id });
  });
app.use(requireToken(verifier));

// fastify: the hooks as preHandler, the identity declared on fastify's request
declare module 'fastify' {
  interface FastifyRequest {
    identity?: Identity;
  }
}
const server = Fastify();
server.get('/me', { preHandler: fastifyRequireToken({ client: verifier }) },
  async (request) => ({ userId: request.identity?.userId }));
server.get('/admin', { preHandler: [fastifyRequireAdmin(verifier)] }, async () => ({}));
