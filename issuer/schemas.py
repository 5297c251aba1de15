"""The shapes of the issuer's answers, for the API description (``shared.web.api``)."""

from __future__ import annotations

from marshmallow import Schema, fields

from issuer.signing import RESERVED_CLAIMS


class Issued(Schema):
    """A signed token and what a caller needs to know about it without decoding it."""

    token = fields.String(required=True)
    tokenType = fields.Constant("Bearer", required=True)  # camelCase: the wire names
    expiresAt = fields.Integer(
        required=True, allow_none=True, metadata={"description": "null: no exp (TTL 0)"}
    )
    jti = fields.String(required=True)
    kid = fields.String(required=True)


class PublishedKey(Schema):
    """An RSA public key of the JWKS (RFC 7517)."""

    class Meta:
        # RFC 7517 members beyond these are allowed
        unknown = "include"

    kty = fields.String(required=True)
    kid = fields.String(required=True)
    n = fields.String(required=True)
    e = fields.String(required=True)
    alg = fields.String()
    use = fields.String()


class Jwks(Schema):
    """The published keys: active first, then next and retiring; ``retired`` names dropped kids."""

    keys = fields.List(fields.Nested(PublishedKey), required=True)
    retired = fields.List(
        fields.String(),
        metadata={"description": "kids taken out: verifiers stop trusting them at once"},
    )


class ClaimRuleDocument(Schema):
    """The admin rule, as JWT_USER_ID_FIELD, JWT_IS_ADMIN_FIELD and JWT_IS_ADMIN_VALUE say."""

    userIdField = fields.String(required=True)
    isAdminField = fields.String(required=True)
    isAdminValue = fields.Raw(required=True, allow_none=True)


class Configuration(Schema):
    """What a verifier trusting this issuer compares with its own configuration."""

    issuer = fields.String(required=True, allow_none=True)
    audience = fields.String(required=True, allow_none=True)
    jwks_uri = fields.String(required=True)
    algorithms = fields.List(fields.String(), required=True)
    claims = fields.Nested(ClaimRuleDocument, required=True)


class KeyRole(Schema):
    """A published kid, its role and, when retiring, when it leaves the JWKS."""

    kid = fields.String(required=True)
    role = fields.String(required=True)
    publishedUntil = fields.Integer(required=True, allow_none=True)


class IssuerReady(Schema):
    """The signing key signs; every published key with its role."""

    status = fields.String(required=True)
    kid = fields.String(required=True)
    keys = fields.List(fields.Nested(KeyRole), required=True)


PAYLOAD_DESCRIPTION = (
    "The user's claims: the user id field is required, other properties are signed as given. "
    f"{', '.join(RESERVED_CLAIMS)} are set by the issuer and refused here (claim_reserved)."
)
