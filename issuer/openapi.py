"""The issuer's OpenAPI 3.1 description, written by hand to match the routes in ``app.py``."""

from __future__ import annotations

from typing import Any

from issuer.config import IssuerSettings
from issuer.signing import RESERVED_CLAIMS
from shared.claims import USER_ID_MAX_LENGTH
from shared.http import PROBLEM_SCHEMA

PROBLEM = "application/problem+json"


def _problem(
    description: str, *codes: str, headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    schema: dict[str, Any] = {"$ref": "#/components/schemas/Problem"}
    if codes:
        schema = {
            "allOf": [
                schema,
                {"properties": {"code": {"enum": list(codes)}}},
            ]
        }
    response: dict[str, Any] = {
        "description": description, "content": {PROBLEM: {"schema": schema}}
    }
    if headers:
        response["headers"] = headers
    return response


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def openapi_document(settings: IssuerSettings) -> dict[str, Any]:
    """The document served at /openapi.json (limits filled in from the running settings)."""
    status_body = {"type": "object", "properties": {"status": {"type": "string"}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jwt-custom-auth issuer",
            "version": "1",
            "description": (
                "Signs RS256 JSON Web Tokens for the callers of an existing authentication "
                "system. Every error is application/problem+json with a stable `code`."
            ),
        },
        "paths": {
            "/v1/tokens": {
                "post": {
                    "operationId": "issueToken",
                    "summary": "Sign a payload for a user",
                    "security": [{"apiKey": []}],
                    "parameters": [
                        {
                            "name": "expires_in",
                            "in": "query",
                            "required": False,
                            "description": "Lifetime in seconds, instead of the configured one.",
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": settings.max_token_ttl,
                            },
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Payload"}}
                        },
                    },
                    "responses": {
                        "201": _json("The signed token", {"$ref": "#/components/schemas/Issued"}),
                        "400": _problem(
                            "Body is not acceptable JSON, or expires_in is out of bounds",
                            "request_invalid", "expires_in_invalid",
                        ),
                        "401": _problem(
                            "API key missing or unknown",
                            "api_key_missing", "api_key_invalid",
                            headers={"WWW-Authenticate": {"schema": {"type": "string"}}},
                        ),
                        "403": _problem(
                            "The admin value (JWT_IS_ADMIN_FIELD/VALUE, isAdmin: true by default) "
                            "asked by a client without the admin permission",
                            "admin_not_permitted",
                        ),
                        "405": _problem("Method not allowed", "method_not_allowed"),
                        "413": _problem(
                            f"Body over {settings.max_body_bytes} bytes", "payload_too_large"
                        ),
                        "415": _problem("Body is not JSON", "unsupported_media_type"),
                        "422": _problem(
                            "The claim schema rejects the payload; `field` names the member",
                            "claim_invalid", "claim_reserved",
                        ),
                        "429": _problem(
                            "Over the client's rate limit",
                            "rate_limited",
                            headers={"Retry-After": {"schema": {"type": "integer"}}},
                        ),
                    },
                }
            },
            "/.well-known/jwks.json": {
                "get": {
                    "operationId": "getJwks",
                    "summary": "Public keys tokens may be signed with (RFC 7517)",
                    "responses": {"200": _json("The JWKS", {"$ref": "#/components/schemas/Jwks"})},
                }
            },
            "/.well-known/jwt-auth.json": {
                "get": {
                    "operationId": "getConfiguration",
                    "summary": "The issuer's claim rule, which a verifier compares with its own",
                    "responses": {"200": _json("The issuer's configuration", {
                        "type": "object",
                        "required": ["jwks_uri", "algorithms", "claims"],
                        "properties": {
                            "issuer": {"type": ["string", "null"]},
                            "audience": {"type": ["string", "null"]},
                            "jwks_uri": {"type": "string"},
                            "algorithms": {"type": "array", "items": {"type": "string"}},
                            "claims": {
                                "type": "object",
                                "required": ["userIdField", "isAdminField", "isAdminValue"],
                                "properties": {
                                    "userIdField": {"type": "string"},
                                    "isAdminField": {"type": "string"},
                                    "isAdminValue": {},
                                },
                            },
                        },
                    })},
                }
            },
            "/v1/public-key": {
                "get": {
                    "operationId": "getPublicKey",
                    "summary": "The active public key, or any published one by kid, as PEM (SPKI)",
                    "parameters": [{
                        "name": "kid", "in": "query", "required": False,
                        "description": "A published key (next, retiring) instead of the active",
                        "schema": {"type": "string"},
                    }],
                    "responses": {
                        "200": {
                            "description": "PEM text",
                            "content": {"application/x-pem-file": {"schema": {"type": "string"}}},
                        },
                        "404": _problem("No published key has this kid", "key_not_found"),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "The process is alive",
                    "responses": {"200": _json("Alive", status_body)},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "The key is loaded and signs",
                    "responses": {
                        "200": _json("Ready", status_body),
                        "503": _json("Not ready", status_body),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus text exposition",
                    "responses": {
                        "200": {
                            "description": "Metrics",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {"200": _json("OpenAPI 3.1", {"type": "object"})},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A client API key made by `jwt-auth clients add`.",
                }
            },
            "schemas": {
                "Payload": {
                    "type": "object",
                    "required": ["userId"],
                    "properties": {
                        "userId": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": USER_ID_MAX_LENGTH,
                            "description": "The user's id; no control characters.",
                        },
                        "isAdmin": {
                            "type": "boolean",
                            "description": "true asks for an admin token (admin clients only).",
                        },
                        "nbf": {"type": "number"},
                        "sub": {"type": "string"},
                    },
                    "not": {"anyOf": [{"required": [name]} for name in RESERVED_CLAIMS]},
                    "additionalProperties": True,
                    "description": (
                        "Other properties are signed as given. "
                        f"{', '.join(RESERVED_CLAIMS)} are set by the issuer and refused here."
                    ),
                },
                "Issued": {
                    "type": "object",
                    "required": ["token", "tokenType", "expiresAt", "jti", "kid"],
                    "properties": {
                        "token": {"type": "string"},
                        "tokenType": {"const": "Bearer"},
                        "expiresAt": {"type": ["integer", "null"]},
                        "jti": {"type": "string"},
                        "kid": {"type": "string"},
                    },
                },
                "Jwks": {
                    "type": "object",
                    "required": ["keys"],
                    "properties": {"keys": {"type": "array", "items": {"type": "object"}}},
                },
                "Problem": PROBLEM_SCHEMA,
            },
        },
    }
