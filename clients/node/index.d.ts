// Type declarations of jwt-auth-client, written by hand beside the JavaScript (index.js, lib/)
// and checked by `tsc --noEmit` (tsconfig.json, test/types/). They name no type of @types/node
// or express: a consumer needs neither to compile against them.

/** Options of both clients; every time is in milliseconds. */
export interface ClientOptions {
  /** Bounds each attempt: connecting, sending, the whole answer. Default 5000. */
  timeoutMs?: number;
  /** How many times a call is tried again after no answer or a 503. Default 2. */
  retries?: number;
  /** The first wait before a retry, doubled at each one (with jitter: half to all of it). Default 100. */
  backoffMs?: number;
  /** The longest wait between two attempts. Default 2000. */
  maxBackoffMs?: number;
  /** No retry starts once this long has passed since the call began. Default 10000. */
  retryBudgetMs?: number;
}

export interface VerifierClientOptions extends ClientOptions {
  /** A key of VERIFIER_CLIENT_KEYS_FILE (or VERIFIER_ADMIN_KEYS_FILE): introspect sends it. */
  apiKey?: string;
}

export interface IssuerClientOptions extends ClientOptions {
  /** The client key `jwt-auth clients add NAME` printed. */
  apiKey: string;
  /** The payload's user id field, as JWT_USER_ID_FIELD sets it. Default "userId". */
  userIdField?: string;
  /** The payload's admin field, as JWT_IS_ADMIN_FIELD sets it. Default "isAdmin". */
  isAdminField?: string;
}

/** What every call takes last. */
export interface CallOptions {
  /** Sent as X-Request-Id (kept when 1 to 128 of A-Z a-z 0-9 - _ . : / + = @, else a fresh id). */
  requestId?: string;
  /** Cancels the call, retries included; the call rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** A good token, as `POST /v1/verify` reported it. */
export interface Identity {
  userId: string;
  /** The verifier's admin rule (JWT_IS_ADMIN_VALUE) applied: strictly true or false. */
  isAdmin: boolean;
  provider: string;
  /** The token's whole payload. */
  claims: Record<string, unknown>;
  /** `iat`, unix seconds, or null. */
  issuedAt: number | null;
  /** `exp`, unix seconds, or null for a token without one. */
  expiresAt: number | null;
  /** False only when the verifier runs with VERIFIER_REDIS_FAILURE_MODE=open and Redis is down. */
  revocationChecked: boolean;
}

/** RFC 7662's answer: `{active: false}` for any token that is not good. */
export type Introspection =
  | { active: false }
  | {
      active: true;
      sub: string;
      username: string;
      userId: string;
      isAdmin: boolean;
      provider: string;
      token_type: 'Bearer';
      revocationChecked: boolean;
      exp?: number;
      iat?: number;
      nbf?: number;
      jti?: string;
      iss?: string;
      aud?: string | string[];
    };

/** A server-side session. `sessionId` is a bearer secret: util.inspect leaves it out. */
export declare class Session {
  private constructor();
  readonly sessionId: string;
  readonly userId: string;
  readonly isAdmin: boolean;
  readonly provider: string;
  /** Unix seconds. */
  readonly createdAt: number;
  /** Unix seconds. */
  readonly expiresAt: number;
}

/** A token the issuer signed. `token` is a bearer secret: util.inspect leaves it out. */
export declare class IssuedToken {
  private constructor();
  readonly token: string;
  readonly tokenType: string;
  /** Unix seconds, or null when the issuer signs tokens without exp (ISSUER_TOKEN_TTL=0). */
  readonly expiresAt: number | null;
  readonly jti: string;
  readonly kid: string;
  /** The X-Request-Id the call was sent with. */
  readonly requestId: string;
}

export declare class VerifierClient {
  constructor(baseUrl: string, options?: VerifierClientOptions);
  readonly baseUrl: string;
  /** Who the token names; rejects with the JwtAuthError subclass of the refusal's code. */
  verify(token: string, options?: CallOptions): Promise<Identity>;
  /** RFC 7662 introspection; needs an API key (the client's, or `options.apiKey`). */
  introspect(token: string, options?: CallOptions & { apiKey?: string }): Promise<Introspection>;
  /** Verify the token and open a server-side session for its user. */
  login(token: string, options?: CallOptions): Promise<Session>;
  /** The live session; rejects with SessionNotFound when it ended or never was. */
  session(sessionId: string, options?: CallOptions): Promise<Session>;
  /** End the session (idempotent). */
  logout(sessionId: string, options?: CallOptions): Promise<void>;
  /** Revoke the token: every verifier refuses it from now on with TokenRevoked. */
  revoke(token: string, options?: CallOptions): Promise<void>;
}

export interface IssueOptions extends CallOptions {
  /** The admin flag; only a client added with --admin may set it true. Left out when undefined. */
  isAdmin?: boolean;
  /** The token's other properties (not the user id, the admin flag, iat, exp, jti, iss, aud). */
  claims?: Record<string, unknown>;
  /** The token's lifetime in seconds instead of ISSUER_TOKEN_TTL (sent as ?expires_in). */
  expiresIn?: number;
  /** This call's API key instead of the client's. */
  apiKey?: string;
}

export declare class IssuerClient {
  constructor(baseUrl: string, options: IssuerClientOptions);
  readonly baseUrl: string;
  readonly userIdField: string;
  readonly isAdminField: string;
  /** A signed token for the user; rejects with the JwtAuthError subclass of the refusal's code. */
  issue(userId: string, options?: IssueOptions): Promise<IssuedToken>;
}

// -- errors -------------------------------------------------------------------------------------

/** The problem document a service answered (RFC 7807), as it came. */
export interface ProblemDocument {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  code?: string;
  field?: string;
  [member: string]: unknown;
}

export interface ErrorOptions {
  status?: number;
  code?: string;
  requestId?: string | null;
  problem?: ProblemDocument;
  cause?: unknown;
  attempts?: number;
  retryAfter?: number | null;
}

/** A service refused a call, or could not be reached. */
export declare class JwtAuthError extends Error {
  constructor(detail: string, options?: ErrorOptions);
  /** The code each instance of the class carries (an unknown code: the instance's own). */
  static readonly code: string;
  /** The problem's stable snake_case code. */
  readonly code: string;
  /** The HTTP status; 0 when no answer came. */
  readonly status: number;
  /** The problem's human-readable detail. */
  readonly detail: string;
  /** The call's X-Request-Id: the service's log lines for it carry this id. */
  readonly requestId: string | null;
  /** The whole problem document ({} when the answer was not one). */
  readonly problem: ProblemDocument;
  /** The member at fault, when the service named one (the issuer's `field`), else null. */
  readonly field: string | null;
}

/** No usable answer after the retries: connection failed, timed out, or 503. */
export declare class ServiceUnavailable extends JwtAuthError {
  /** How many attempts were made. */
  readonly attempts: number;
  /** The service's Retry-After in seconds, when its 503 carried one. */
  readonly retryAfter: number | null;
}
/** The Python client's name for ServiceUnavailable: the very same class. */
export declare const VerifierUnavailable: typeof ServiceUnavailable;
export type VerifierUnavailable = ServiceUnavailable;
/** 503: the verifier needs Redis and cannot reach it. */
export declare class StoreUnavailable extends ServiceUnavailable {}
/** 503: keys not loaded, or Redis unreachable (readiness). */
export declare class NotReady extends ServiceUnavailable {}

/** 401 from the verifier: the token is refused; the subclasses say why. */
export declare class InvalidToken extends JwtAuthError {}
export declare class TokenMalformed extends InvalidToken {}
export declare class AlgorithmNotAllowed extends InvalidToken {}
export declare class SignatureInvalid extends InvalidToken {}
export declare class KeyUnknown extends InvalidToken {}
export declare class TokenExpired extends InvalidToken {}
export declare class TokenNotYetValid extends InvalidToken {}
export declare class TokenTooOld extends InvalidToken {}
export declare class ClaimMissing extends InvalidToken {}
/** 401 from the verifier: a claim of the token has the wrong type or value. */
export declare class ClaimInvalid extends InvalidToken {}
export declare class AttributesMismatch extends InvalidToken {}
/** The verifier trusts several issuers and the token's `iss` names none of them. */
export declare class IssuerUnknown extends InvalidToken {}
export declare class TokenRevoked extends InvalidToken {}
export declare class TokenMissing extends InvalidToken {}

/** 404 (`GET /v1/sessions/<id>`) or 401 (forward-auth): no live session has this id. */
export declare class SessionNotFound extends JwtAuthError {}
export declare class UserNotFound extends JwtAuthError {}
/** 429 from the verifier's login. */
export declare class LoginRateExceeded extends JwtAuthError {
  /** Seconds until the next login is accepted (Retry-After), or null. */
  readonly retryAfter: number | null;
}
/** 429 from the issuer: over ISSUER_RATE_LIMIT. */
export declare class RateLimited extends JwtAuthError {
  /** Seconds to wait (Retry-After), or null. */
  readonly retryAfter: number | null;
}
export declare class RequestInvalid extends JwtAuthError {}
/** 400 from the issuer: expiresIn is not a whole number from 1 to ISSUER_MAX_TOKEN_TTL. */
export declare class ExpiresInInvalid extends RequestInvalid {}
/** 401: the API key is missing or unknown (verifier introspection and admin routes, issuer). */
export declare class Unauthorized extends JwtAuthError {}
export declare class ApiKeyMissing extends Unauthorized {}
export declare class ApiKeyInvalid extends Unauthorized {}
export declare class Forbidden extends JwtAuthError {}
/** 403 from the issuer: isAdmin true from a client added without --admin. */
export declare class AdminNotPermitted extends Forbidden {}
/** 422 from the issuer: its claim schema refused the payload (`field` names the member). */
export declare class PayloadRejected extends JwtAuthError {}
/** 422 from the issuer, code claim_invalid (the verifier's claim_invalid is ClaimInvalid). */
export declare class PayloadClaimInvalid extends PayloadRejected {}
/** 422 from the issuer: the payload sets iat, exp, jti, iss or aud. */
export declare class ClaimReserved extends PayloadRejected {}
export declare class KeyNotFound extends JwtAuthError {}
export declare class NotFound extends JwtAuthError {}
export declare class MethodNotAllowed extends JwtAuthError {}
export declare class PayloadTooLarge extends JwtAuthError {}
export declare class UnsupportedMediaType extends JwtAuthError {}
export declare class InternalError extends JwtAuthError {}

type ErrorClass = typeof JwtAuthError;
/** The verifier's problem codes, each to its class. */
export declare const VERIFIER_ERRORS: Readonly<Record<string, ErrorClass>>;
/** The issuer's problem codes, each to its class. */
export declare const ISSUER_ERRORS: Readonly<Record<string, ErrorClass>>;
/** The error for a problem answer of the service: its code's class, else JwtAuthError itself. */
export declare function errorFor(
  service: 'verifier' | 'issuer',
  answer: {
    status: number;
    code?: string;
    detail: string;
    requestId?: string | null;
    problem?: ProblemDocument;
    attempts?: number;
    retryAfter?: number | null;
  },
): JwtAuthError;

/** The retry options' defaults. */
export declare const RETRY_DEFAULTS: Readonly<Required<ClientOptions>>;
/** A fresh request id in the services' own form (24 hex digits). */
export declare function newRequestId(): string;

// -- express middleware ------------------------------------------------------------------------

/** What the middleware reads of a request: node's IncomingMessage, express's Request. */
export interface RequestLike {
  headers: Record<string, string | string[] | undefined>;
  identity?: Identity;
}

/** What the middleware uses of a response: node's ServerResponse, express's Response. */
export interface ResponseLike {
  statusCode: number;
  setHeader(name: string, value: string | number): unknown;
  end(body: string): unknown;
}

export type NextFunction = (error?: unknown) => void;
export type Middleware = (req: RequestLike, res: ResponseLike, next: NextFunction) => Promise<void>;

export interface MiddlewareOptions extends VerifierClientOptions {
  /** The client to ask; without it one is made from verifierUrl and the other options. */
  client?: VerifierClient;
  verifierUrl?: string;
  /** The realm named in WWW-Authenticate; none by default. */
  realm?: string;
}

/** The route runs only for a good bearer token, its Identity on `req.identity`. */
export declare function requireToken(options: MiddlewareOptions | VerifierClient): Middleware;
/** Like requireToken, and the token must be an admin's (403 admin_required otherwise). */
export declare function requireAdmin(options: MiddlewareOptions | VerifierClient): Middleware;
/** The credential of `Authorization: Bearer <credential>`, or null. */
export declare function bearer(authorization: string | undefined | null): string | null;

// -- fastify hooks -----------------------------------------------------------------------------

/** What the hooks use of a reply: fastify's FastifyReply. */
export interface ReplyLike {
  code(statusCode: number): ReplyLike;
  headers(values: Record<string, string>): ReplyLike;
  send(payload: Buffer): unknown;
}

/** A fastify preHandler: answers a refusal itself, or leaves the Identity on `request.identity`. */
export type PreHandler = (request: RequestLike, reply: ReplyLike) => Promise<unknown>;

/**
 * preHandler: the route runs only for a good bearer token, its Identity on `request.identity`
 * (declare `identity?: Identity` on fastify's FastifyRequest to read it typed).
 */
export declare function fastifyRequireToken(options: MiddlewareOptions | VerifierClient): PreHandler;
/** Like fastifyRequireToken, and the token must be an admin's (403 admin_required otherwise). */
export declare function fastifyRequireAdmin(options: MiddlewareOptions | VerifierClient): PreHandler;

declare global {
  // express's Request (with @types/express) gets the identity the middleware sets
  namespace Express {
    interface Request {
      identity?: Identity;
    }
  }
}
