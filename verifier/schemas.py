"""The shapes of the verifier's requests and answers: read at the routes, and documented."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate

from shared.claims import StrictString

# camelCase attribute names below are the wire names of the contract


class TokenRequest(Schema):
    """The body of verify, login and revoke: ``{"token": "<jwt>"}``."""

    class Meta:
        unknown = EXCLUDE

    token = StrictString(required=True, validate=validate.Length(min=1))


class RevocationByJti(Schema):
    """An admin's revocation of a token it does not hold: its jti, its user and its expiry."""

    class Meta:
        unknown = EXCLUDE

    jti = StrictString(required=True, validate=validate.Length(min=1, max=128))
    userId = StrictString(required=True, validate=validate.Length(min=1))
    expiresAt = fields.Float(
        required=True, allow_none=True, allow_nan=False,
        metadata={"description": "the token's exp (unix seconds), or null when it has none: "
                                 "the revocation then stays"})
    provider = StrictString(
        metadata={"description": "the token's issuer (its providerName), needed when several "
                                 "issuers are trusted"})


class Verified(Schema):
    """A good token: who it names, whether an admin, and the whole payload as signed."""

    userId = fields.String(required=True)
    isAdmin = fields.Boolean(required=True)
    provider = fields.String(required=True)
    claims = fields.Dict(required=True, metadata={"description": "the whole payload"})
    issuedAt = fields.Float(required=True, allow_none=True)
    expiresAt = fields.Float(required=True, allow_none=True)
    revocationChecked = fields.Boolean(
        required=True,
        metadata={"description": "false: Redis unreachable in open mode, the answer rests on "
                                 "the signature alone"},
    )


class AuthResult(Schema):
    """Forward-auth's body; the same identity is in the X-Auth-* headers."""

    userId = fields.String(required=True)
    isAdmin = fields.Boolean(required=True)
    provider = fields.String(required=True)
    revocationChecked = fields.Boolean(required=True)


class Session(Schema):
    """A server-side session opened by a login."""

    sessionId = fields.String(required=True, metadata={"description": "256 random bits"})
    userId = fields.String(required=True)
    isAdmin = fields.Boolean(required=True)
    provider = fields.String(required=True)
    createdAt = fields.Integer(required=True)
    expiresAt = fields.Integer(required=True)


class CurrentSession(Schema):
    """The browser's own session, without its id: the cookie is HttpOnly so that no script of
    the page ever holds it."""

    userId = fields.String(required=True)
    isAdmin = fields.Boolean(required=True)
    provider = fields.String(required=True)
    createdAt = fields.Integer(required=True)
    expiresAt = fields.Integer(required=True)


class UserLogout(Schema):
    """A user-wide logout: sessions ended, and the cut-off before which tokens are refused."""

    userId = fields.String(required=True)
    provider = fields.String(required=True)
    sessionsEnded = fields.Integer(required=True)
    tokensRevokedBefore = fields.Float(required=True)


class SessionListed(Schema):
    """One live session of a user, named by the hash of its id (the id is a credential)."""

    sessionHash = fields.String(required=True, metadata={"description": "sha256 of the id"})
    isAdmin = fields.Boolean(required=True)
    createdAt = fields.Integer(required=True)
    expiresAt = fields.Integer(required=True)


class UserSessions(Schema):
    """A user's live sessions, oldest first."""

    userId = fields.String(required=True)
    provider = fields.String(required=True)
    sessions = fields.List(fields.Nested(SessionListed), required=True)


class User(Schema):
    """The user record as of the last login."""

    userId = fields.String(required=True)
    isAdmin = fields.Boolean(required=True)
    provider = fields.String(required=True)
    createdAt = fields.Integer(required=True)
    lastLoginAt = fields.Integer(required=True)
    tokensRevokedBefore = fields.Float(required=True, allow_none=True)


class TrustedKey(Schema):
    """A key the verifier trusts."""

    provider = fields.String(required=True, metadata={"description": "its issuer's name"})
    kid = fields.String(required=True, metadata={"description": "RFC 7638 thumbprint"})
    alg = fields.String(required=True)
    source = fields.String(required=True,
                           metadata={"description": "pem:<file> or jwks:<url>"})
    trustedUntil = fields.Integer(
        required=True, allow_none=True,
        metadata={"description": "unix seconds, for a key that left its JWKS (its grace); "
                                 "null while it is configured or published"})


class VerifierReady(Schema):
    """Each dependency and whether it answers, and the keys this process trusts."""

    status = fields.String(
        required=True, validate=validate.OneOf(["ready", "degraded"]),
        metadata={"description": "degraded: Redis is down and VERIFIER_REDIS_FAILURE_MODE=open "
                                 "(tokens are checked by signature alone), or one of several "
                                 "trusted issuers has no keys (allIssuers false: its tokens "
                                 "are refused)"})
    checks = fields.Dict(keys=fields.String(), values=fields.Boolean(), required=True)
    keys = fields.List(fields.Nested(TrustedKey), required=True)


class IntrospectionRequest(Schema):
    """RFC 7662 section 2.1, sent as application/x-www-form-urlencoded. Other parameters are
    accepted and ignored (the RFC lets a server define more; OAuth clients send some)."""

    class Meta:
        unknown = EXCLUDE

    token = fields.String(required=True, metadata={
        "description": "the JWT to look at; an empty one is {\"active\": false}"})
    token_type_hint = fields.String(
        metadata={"description": "accepted and ignored: the verifier knows one kind of token"})


class Introspection(Schema):
    """RFC 7662 section 2.2: ``{"active": false}`` alone for any token that is not good."""

    active = fields.Boolean(required=True)
    sub = fields.String(metadata={"description": "the user id"})
    username = fields.String(metadata={"description": "the user id"})
    userId = fields.String()
    isAdmin = fields.Boolean()
    provider = fields.String()
    token_type = fields.String(metadata={"description": "Bearer"})
    exp = fields.Raw(metadata={"description": "the token's exp, when it has one"})
    iat = fields.Raw(metadata={"description": "the token's iat, when it has one"})
    nbf = fields.Raw(metadata={"description": "the token's nbf, when it has one"})
    jti = fields.Raw(metadata={"description": "the token's jti, when it has one"})
    iss = fields.Raw(metadata={"description": "the token's iss, when it has one"})
    aud = fields.Raw(metadata={"description": "the token's aud (a string or a list)"})
    revocationChecked = fields.Boolean(
        metadata={"description": "false: Redis unreachable in open mode, signature alone"})
