"""The shapes of the issuer's answers, for the API description (``shared.web.api``)."""

from __future__ import annotations

from marshmallow import Schema, fields


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
    """A public key of the JWKS (RFC 7517, RFC 8037): RSA (n, e), EC P-256 (crv, x, y) or OKP
    Ed25519 (crv, x)."""

    class Meta:
        # RFC 7517 members beyond these are allowed
        unknown = "include"

    kty = fields.String(required=True, metadata={"enum": ["RSA", "EC", "OKP"]})
    kid = fields.String(required=True)
    alg = fields.String(required=True, metadata={"enum": ["RS256", "ES256", "EdDSA"]})
    use = fields.Constant("sig", required=True)
    n = fields.String(metadata={"description": "RSA modulus"})
    e = fields.String(metadata={"description": "RSA exponent"})
    crv = fields.String(metadata={"description": "P-256 (EC) or Ed25519 (OKP)"})
    x = fields.String()
    y = fields.String(metadata={"description": "EC only"})


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


class Discovery(Schema):
    """Authorization server metadata (RFC 8414) and OpenID Provider metadata (OIDC Discovery
    1.0) of an issuer that signs tokens and publishes its keys, and has no OAuth endpoint."""

    issuer = fields.String(required=True, metadata={"description": "ISSUER_ISSUER, exactly"})
    jwks_uri = fields.String(required=True)
    id_token_signing_alg_values_supported = fields.List(
        fields.String(), required=True,
        metadata={"description": "the algorithms of the published keys, the signing one first"},
    )
    subject_types_supported = fields.List(
        fields.String(),
        metadata={"description": "public: sub is the user id, the same for every client "
                                 "(absent with ISSUER_SET_SUBJECT=false)"},
    )
    claims_supported = fields.List(fields.String(), required=True)
    service_documentation = fields.String(required=True)


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


def payload_description(reserved: tuple[str, ...]) -> str:
    """What ``POST /v1/tokens`` takes, naming the claims this issuer sets itself."""
    return (
        "The user's claims: the user id field is required, other properties are signed as "
        f"given. {', '.join(reserved)} are set by the issuer and refused here (claim_reserved)."
    )
