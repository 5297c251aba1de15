"""Who may call the verifier's protected routes: admins, and introspecting resource servers.

One place for each check, whichever kind of route asks (a Flask view, a hot route): the key from
``Authorization``, 401 with ``WWW-Authenticate`` when it is missing or unknown, 403 when it lacks
the permission.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import urllib.parse

from shared.apikeys import ApiClient, ApiKeyRegistry, bearer_token
from shared.errors import Forbidden, Unauthorized

ADMIN_REALM = 'Bearer realm="jwt-auth-verifier-admin"'
# RFC 7662 section 2.1 points at RFC 6749's client authentication: HTTP Basic first
INTROSPECTION_REALM = ('Basic realm="jwt-auth-verifier-introspection", '
                       'Bearer realm="jwt-auth-verifier-introspection"')


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
    """The resource server calling introspection, or 401 (RFC 7662 section 2.1).

    Its key comes as ``Authorization: Bearer <key>``, or as RFC 6749's ``client_secret_basic``
    (what OAuth libraries send): ``Basic base64(name:key)``, the client's name in the keys file
    and its key, each form-urlencoded. The name must be the one the key belongs to.
    """
    basic = _basic_credentials(authorization)
    key = basic[1] if basic is not None else bearer_token(authorization)
    for registry in (clients, admins):
        client = registry.authenticate(key)
        if client is None:
            continue
        if basic is not None and not hmac.compare_digest(client.name.encode(),
                                                         basic[0].encode()):
            break  # a known key under another client's name: refused like an unknown one
        return client
    raise Unauthorized(
        "Send a key from VERIFIER_CLIENT_KEYS_FILE (or VERIFIER_ADMIN_KEYS_FILE) as "
        "Authorization: Basic base64(name:key) or Authorization: Bearer <key>.",
        headers={"WWW-Authenticate": INTROSPECTION_REALM},
    )


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """(name, key) of an ``Authorization: Basic`` header (RFC 7617, RFC 6749 2.3.1), or None."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    name, colon, key = decoded.partition(":")
    if not colon:
        return None
    return urllib.parse.unquote_plus(name), urllib.parse.unquote_plus(key)
