"""Who may call the verifier's protected routes: admins, and introspecting resource servers.

One place for each check, whichever kind of route asks (a Flask view, a hot route): the key from
``Authorization``, 401 with ``WWW-Authenticate`` when it is missing or unknown, 403 when it lacks
the permission.
"""

from __future__ import annotations

from shared.apikeys import ApiClient, ApiKeyRegistry, bearer_token
from shared.errors import Forbidden, Unauthorized

ADMIN_REALM = 'Bearer realm="jwt-auth-verifier-admin"'
INTROSPECTION_REALM = 'Bearer realm="jwt-auth-verifier-introspection"'


def require_admin(admins: ApiKeyRegistry, authorization: str | None) -> ApiClient:
    """The admin calling, or 401 (no or an unknown key) / 403 (a key without the permission)."""
    client = admins.authenticate(bearer_token(authorization))
    if client is None:
        raise Unauthorized(
            "Send an admin API key from VERIFIER_ADMIN_KEYS_FILE as Authorization: Bearer <key>.",
            headers={"WWW-Authenticate": ADMIN_REALM},
        )
    if not client.admin:
        raise Forbidden(f"The key of {client.name!r} is not an admin key.")
    return client


def require_introspecting_client(
    clients: ApiKeyRegistry, admins: ApiKeyRegistry, authorization: str | None
) -> ApiClient:
    """The resource server calling introspection, or 401 (RFC 7662 section 2.1)."""
    key = bearer_token(authorization)
    for registry in (clients, admins):
        client = registry.authenticate(key)
        if client is not None:
            return client
    raise Unauthorized(
        "Send a key from VERIFIER_CLIENT_KEYS_FILE (or VERIFIER_ADMIN_KEYS_FILE) as "
        "Authorization: Bearer <key>.",
        headers={"WWW-Authenticate": INTROSPECTION_REALM},
    )
