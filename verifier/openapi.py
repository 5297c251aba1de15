"""The verifier's OpenAPI 3.1 description, served at /openapi.json."""

from __future__ import annotations

from typing import Any

from shared.http import PROBLEM_SCHEMA

TOKEN_CODES = [
    "token_malformed", "algorithm_not_allowed", "signature_invalid", "key_unknown",
    "token_expired", "token_not_yet_valid", "token_too_old", "claim_missing", "claim_invalid",
    "attributes_mismatch", "token_revoked",
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problem(description: str, codes: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = _ref("Problem")
    if codes:
        schema = {"allOf": [_ref("Problem"), {"properties": {"code": {"enum": codes}}}]}
    return {"description": description, "content": {"application/problem+json": {"schema": schema}}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_TOKEN_BODY = {
    "required": False,
    "description": "The token; it may instead come as Authorization: Bearer with no body.",
    "content": {"application/json": {"schema": _ref("TokenRequest")}},
}
_BEARER_JWT: list[dict[str, list[str]]] = [{"bearerJwt": []}, {}]
_ADMIN: list[dict[str, list[str]]] = [{"adminKey": []}]
_STORE = _problem("Redis is needed and unreachable", ["store_unavailable"])
_BAD_BODY = _problem("Bad request body", ["request_invalid"])
_UNAUTHORIZED_ADMIN = _problem("No or unknown admin key", ["unauthorized"])
_FORBIDDEN = _problem("The key is not an admin key", ["forbidden"])
_USER_ID = {
    "name": "userId", "in": "path", "required": True,
    "description": "The user id as the verifier reports it (escape characters replaced).",
    "schema": {"type": "string", "maxLength": 255},
}
_SESSION_ID = {
    "name": "sessionId", "in": "path", "required": True, "schema": {"type": "string"},
}
_AUTH_HEADERS = {
    "X-Auth-User-Id": {
        "schema": {"type": "string"},
        "description": "The user id; percent-encoded UTF-8 when X-Auth-User-Id-Encoding is "
        "'percent' (ids that are not printable ASCII)",
    },
    "X-Auth-Is-Admin": {"schema": {"enum": ["true", "false"]}},
    "X-Auth-Provider": {"schema": {"type": "string"}},
    "X-Revocation-Checked": {
        "schema": {"enum": ["true", "false"]},
        "description": "false when Redis was unreachable in open mode: signature only",
    },
}
_FORWARD_AUTH: dict[str, Any] = {
    "summary": "Forward-auth for nginx auth_request, Traefik ForwardAuth, Envoy ext_authz",
    "description": "Authorization: Bearer <jwt or session id>. A value with a dot is a JWT, "
    "anything else a session id. Every HTTP method is accepted, since proxies forward the "
    "original one.",
    "security": [{"bearerJwt": []}, {"session": []}],
    "responses": {
        "200": {**_json("Authenticated", _ref("AuthResult")), "headers": _AUTH_HEADERS},
        "401": {
            **_problem(
                "Refused; WWW-Authenticate: Bearer error=\"invalid_token\"",
                [*TOKEN_CODES, "token_missing", "session_not_found"],
            ),
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
        },
        "503": _STORE,
    },
}


def openapi_document() -> dict[str, Any]:
    """The whole document (built per call: it is small and served rarely)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jwt-custom-auth verifier",
            "version": "1",
            "description": "Validates RS256 tokens with public keys only; sessions, revocations "
            "and a verification cache in Redis.",
        },
        "paths": {
            "/v1/verify": {
                "post": {
                    "summary": "Verify a token",
                    "requestBody": _TOKEN_BODY,
                    "security": _BEARER_JWT,
                    "responses": {
                        "200": {
                            **_json("The token is good", _ref("Verified")),
                            "headers": {"X-Revocation-Checked": _AUTH_HEADERS[
                                "X-Revocation-Checked"]},
                        },
                        "400": _BAD_BODY,
                        "401": _problem("The token is refused", TOKEN_CODES),
                        "413": _problem("Body too large", ["payload_too_large"]),
                        "415": _problem("Body is not JSON", ["unsupported_media_type"]),
                        "503": _STORE,
                    },
                }
            },
            "/v1/auth": {method: _FORWARD_AUTH for method in (
                "get", "head", "post", "put", "patch", "delete", "options")},
            "/v1/auth/{forwardedPath}": {
                "parameters": [{
                    "name": "forwardedPath", "in": "path", "required": True,
                    "description": "Ignored: Envoy ext_authz appends the original path.",
                    "schema": {"type": "string"},
                }],
                **{method: _FORWARD_AUTH for method in (
                    "get", "head", "post", "put", "patch", "delete", "options")},
            },
            "/v1/sessions": {
                "post": {
                    "summary": "Log in: verify the token, update the user record, open a session",
                    "requestBody": _TOKEN_BODY,
                    "responses": {
                        "201": _json("Session opened", _ref("Session")),
                        "400": _BAD_BODY,
                        "401": _problem("The token is refused", TOKEN_CODES),
                        "503": _STORE,
                    },
                }
            },
            "/v1/sessions/{sessionId}": {
                "parameters": [_SESSION_ID],
                "get": {
                    "summary": "Look up a session",
                    "responses": {
                        "200": _json("The live session", _ref("Session")),
                        "404": _problem("No such live session", ["session_not_found"]),
                        "503": _STORE,
                    },
                },
                "delete": {
                    "summary": "Log out (idempotent)",
                    "responses": {"204": {"description": "The session is over"}, "503": _STORE},
                },
            },
            "/v1/revocations": {
                "post": {
                    "summary": "Revoke a token (holding it is the right to revoke it)",
                    "description": "The token must verify. An expired, too old or already "
                    "revoked token is already refused for good: 204 without a write.",
                    "requestBody": _TOKEN_BODY,
                    "responses": {
                        "204": {"description": "The token is refused from now on"},
                        "400": _BAD_BODY,
                        "401": _problem("The token does not verify", TOKEN_CODES),
                        "503": _STORE,
                    },
                }
            },
            "/v1/users/{userId}/sessions": {
                "parameters": [_USER_ID],
                "delete": {
                    "summary": "End every session of a user and refuse every token issued so far",
                    "security": _ADMIN,
                    "responses": {
                        "200": _json("Done", _ref("UserLogout")),
                        "400": _BAD_BODY,
                        "401": _UNAUTHORIZED_ADMIN,
                        "403": _FORBIDDEN,
                        "503": _STORE,
                    },
                },
            },
            "/v1/users/{userId}": {
                "parameters": [_USER_ID],
                "get": {
                    "summary": "The user record as of the last login",
                    "security": _ADMIN,
                    "responses": {
                        "200": _json("The user", _ref("User")),
                        "400": _BAD_BODY,
                        "401": _UNAUTHORIZED_ADMIN,
                        "403": _FORBIDDEN,
                        "404": _problem("Never logged in", ["user_not_found"]),
                        "503": _STORE,
                    },
                },
            },
            "/healthz": {"get": {"summary": "The process is alive", "responses": {
                "200": _json("Alive", {"type": "object"})}}},
            "/readyz": {"get": {"summary": "Keys loaded and Redis reachable", "responses": {
                "200": _json("Ready", {"type": "object"}),
                "503": _problem("Not ready", ["not_ready"])}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
                "200": {"description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {
                "200": _json("OpenAPI 3.1", {"type": "object"})}}},
        },
        "components": {
            "securitySchemes": {
                "bearerJwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "session": {"type": "http", "scheme": "bearer",
                            "description": "A session id from POST /v1/sessions"},
                "adminKey": {"type": "http", "scheme": "bearer",
                             "description": "An admin key from VERIFIER_ADMIN_KEYS_FILE"},
            },
            "schemas": {
                "TokenRequest": {
                    "type": "object", "required": ["token"],
                    "properties": {"token": {"type": "string", "minLength": 1}},
                },
                "Verified": {
                    "type": "object",
                    "required": ["userId", "isAdmin", "provider", "claims", "issuedAt",
                                 "expiresAt", "revocationChecked"],
                    "properties": {
                        "userId": {"type": "string"},
                        "isAdmin": {"type": "boolean"},
                        "provider": {"type": "string"},
                        "claims": {"type": "object", "description": "The whole payload"},
                        "issuedAt": {"type": ["number", "null"]},
                        "expiresAt": {"type": ["number", "null"]},
                        "revocationChecked": {
                            "type": "boolean",
                            "description": "false: Redis unreachable in open mode, the "
                            "answer rests on the signature alone",
                        },
                    },
                },
                "AuthResult": {
                    "type": "object",
                    "properties": {
                        "userId": {"type": "string"}, "isAdmin": {"type": "boolean"},
                        "provider": {"type": "string"}, "revocationChecked": {"type": "boolean"},
                    },
                },
                "Session": {
                    "type": "object",
                    "required": ["sessionId", "userId", "isAdmin", "provider", "expiresAt"],
                    "properties": {
                        "sessionId": {"type": "string", "description": "256 random bits"},
                        "userId": {"type": "string"},
                        "isAdmin": {"type": "boolean"},
                        "provider": {"type": "string"},
                        "createdAt": {"type": "integer"},
                        "expiresAt": {"type": "integer"},
                    },
                },
                "UserLogout": {
                    "type": "object",
                    "properties": {
                        "userId": {"type": "string"},
                        "sessionsEnded": {"type": "integer"},
                        "tokensRevokedBefore": {"type": "number"},
                    },
                },
                "User": {
                    "type": "object",
                    "required": ["userId", "isAdmin", "provider", "createdAt", "lastLoginAt"],
                    "properties": {
                        "userId": {"type": "string"},
                        "isAdmin": {"type": "boolean"},
                        "provider": {"type": "string"},
                        "createdAt": {"type": "integer"},
                        "lastLoginAt": {"type": "integer"},
                        "tokensRevokedBefore": {"type": ["number", "null"]},
                    },
                },
                "Problem": PROBLEM_SCHEMA,
            },
        },
    }
