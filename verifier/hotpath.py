"""The two routes every app backend calls on every request, answered on the event loop.

``POST /v1/verify`` and ``/v1/auth`` (forward-auth) are nearly all of the verifier's traffic
(``shared.web.hot``). A token is judged from what the process holds when it can be
(``VerifierService.verify_from_memory``: the cache, the keys, the revocation mirror); when only
Redis or the issuer's JWKS can settle it, the verification runs in the app's thread pool. The
body rules (``token_from_body``) are the ones the Flask views for login and revocation use too.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from marshmallow import ValidationError

from shared.apikeys import ApiKeyRegistry, bearer_token
from shared.claims import first_error
from shared.errors import Forbidden, NotReady, RequestInvalid, Unauthorized
from shared.web.api import Api
from shared.web.hot import HotRoute, Request, parse_json
from shared.web.metrics import HTTP_METHODS
from shared.web.problems import Answer, json_answer
from verifier.browser import (
    CsrfRefused,
    check_csrf,
    forwarded_method,
    from_nginx,
    is_browser,
    original_url,
)
from verifier.callers import require_admin
from verifier.claimheaders import claim_headers
from verifier.errors import (
    FORWARD_AUTH_ONLY,
    TOKEN_ERRORS,
    SessionUnknown,
    StoreUnavailable,
    TokenError,
    TokenMissing,
)
from verifier.schemas import AuthResult, TokenRequest, Verified
from verifier.service import Verdict, VerifierService
from verifier.verification import VerifiedToken

REVOCATION_HEADER = "X-Revocation-Checked"
"""``false`` when the answer rests on the signature alone (open mode, Redis unreachable)."""

FORWARD_AUTH_METHODS = HTTP_METHODS
"""A proxy asks with the method its client used; anything else is no request of a proxy's."""


_TOKEN_REQUEST = TokenRequest()  # built once: a schema instance costs more than the load


def token_from_body(body: bytes, content_type: str | None, authorization: str | None) -> str:
    """The token from ``{"token": ...}``, or from ``Authorization: Bearer`` without a body."""
    if not body:
        bearer = bearer_token(authorization)
        if bearer is None:
            raise RequestInvalid(
                'Send {"token": "<jwt>"} as JSON, or Authorization: Bearer <jwt>.'
            )
        return bearer
    document = parse_json(body, content_type)
    if not isinstance(document, dict):
        raise RequestInvalid('The body must be a JSON object: {"token": "<jwt>"}.')
    # what the schema accepts, checked directly; the schema runs to word the refusal
    token = document.get("token")
    if isinstance(token, str) and token:
        return token
    try:
        loaded: dict[str, Any] = _TOKEN_REQUEST.load(document)
    except ValidationError as exc:
        field, message = first_error(exc.messages)
        raise RequestInvalid(f"{field}: {message}", extra={"field": field}) from None
    token = loaded["token"]
    assert isinstance(token, str)
    return token


def verified_body(verdict: Verdict) -> dict[str, Any]:
    """What ``POST /v1/verify`` answers for a good token."""
    token = verdict.token
    return {
        "userId": token.user_id,
        "isAdmin": token.is_admin,
        "provider": token.provider,
        "claims": token.claims,
        "issuedAt": token.issued_at,
        "expiresAt": token.expires_at,
        "revocationChecked": verdict.revocation_checked,
    }


class VerifiedAnswers:
    """The encoded ``POST /v1/verify`` answer of each token verified lately.

    Most traffic is the same tokens again, and the cache (``LocalCache``) hands back the same
    ``VerifiedToken`` for each: its answer is encoded once, not per request (the JSON encoding
    was about 4% of a worker's time at full load). Keyed by the object's identity, checked, so
    a recycled id never answers for another token; emptied whole when full.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._answers: dict[tuple[int, bool], tuple[VerifiedToken, bytes]] = {}

    def body(self, verdict: Verdict) -> bytes:
        key = (id(verdict.token), verdict.revocation_checked)
        found = self._answers.get(key)
        if found is not None and found[0] is verdict.token:
            return found[1]
        body = json_answer(200, verified_body(verdict)).body
        if len(self._answers) >= self._size:
            self._answers.clear()
        self._answers[key] = (verdict.token, body)
        return body


_JSON = [("Content-Type", "application/json")]
_CHECKED = {True: (REVOCATION_HEADER, "true"), False: (REVOCATION_HEADER, "false")}


def _explain_requested(query: str) -> bool:
    # blank values kept: "?explain=" is neither true nor false, and is refused as such
    values = urllib.parse.parse_qs(query, keep_blank_values=True).get("explain")
    if not values:
        return False
    if values[-1] not in ("true", "false"):
        raise RequestInvalid("explain: expected true or false.", extra={"field": "explain"})
    return values[-1] == "true"


def header_safe(value: str) -> tuple[str, bool]:
    """A header value for any user id: as is when printable ASCII, else percent-encoded UTF-8."""
    if value.isascii() and value.isprintable():
        return value, False
    return urllib.parse.quote(value, safe=""), True


async def _verdict(request: Request, service: VerifierService, token: str) -> Verdict:
    """The verdict from memory when the process holds all it needs, else from a thread."""
    verdict = service.verify_from_memory(token)
    if verdict is None:
        verdict = await request.in_thread(service.verify, token)
    return verdict


def hot_routes(
    api: Api, service: VerifierService, *, admins: ApiKeyRegistry
) -> list[HotRoute]:
    """The verifier's routes answered on the event loop, declared to ``api``."""
    claim_mapping = service.settings.claim_headers
    answers = VerifiedAnswers()
    browser = service.settings.browser

    async def explain(request: Request) -> Answer:
        """Every step of the pipeline for the body's token; the admin key in Authorization."""
        require_admin(admins, request.header("authorization"))
        # the token comes from the body only: Authorization carries the admin key
        token = token_from_body(await request.body(), request.header("content-type"), None)
        explained = await request.in_thread(service.explain, token)
        return json_answer(200, explained, [("Cache-Control", "no-store")])

    async def verify(request: Request) -> Answer:
        if request.query and _explain_requested(request.query):
            return await explain(request)
        token = token_from_body(await request.body(), request.header("content-type"),
                                request.header("authorization"))
        verdict = await _verdict(request, service, token)
        return Answer(200, answers.body(verdict), [*_JSON, _CHECKED[verdict.revocation_checked]])

    async def forward_auth(request: Request) -> Answer:
        """nginx auth_request, Traefik ForwardAuth, Envoy ext_authz (which appends the path);
        a refused browser is sent to the login page when one is configured."""
        try:
            return await check_forwarded(request)
        except TokenError as refused:
            location = browser.login_location(original_url(request.header)) \
                if is_browser(request.header) else None
            if location is None:
                raise
            if from_nginx(request.header):
                # auth_request passes a 401 on, never a 302: its error_page redirects
                refused.headers = {**refused.headers, "Location": location}
                raise
            return Answer(302, b"", [("Location", location), ("Cache-Control", "no-store")])

    async def check_forwarded(request: Request) -> Answer:
        credential = bearer_token(request.header("authorization"))
        if credential is None:
            # a browser's session: only in the cookie, and only from the site itself
            credential = browser.session_id(request.header("cookie"))
            if credential is None:
                raise TokenMissing("Send Authorization: Bearer <jwt or session id>.")
            check_csrf(request.header, forwarded_method(request.header, request.method),
                       original_url(request.header))
        checked = True
        extra: list[tuple[str, str]] = []
        if "." in credential:
            # a JWT always has dots; a session id never does
            verdict = await _verdict(request, service, credential)
            token = verdict.token
            user_id, is_admin, provider = token.user_id, token.is_admin, token.provider
            checked = verdict.revocation_checked
            if claim_mapping:  # VERIFIER_CLAIM_HEADERS; a session holds no claims
                extra = claim_headers(claim_mapping, token.claims)
        else:
            session = await request.in_thread(service.session, credential)
            if session is None:
                raise SessionUnknown("No live session has this id.")
            user_id, is_admin, provider = (
                session["userId"], session["isAdmin"], session["provider"],
            )
        header_id, encoded = header_safe(user_id)
        headers = [("X-Auth-User-Id", header_id)]
        if encoded:
            headers.append(("X-Auth-User-Id-Encoding", "percent"))
        headers += [
            ("X-Auth-Is-Admin", "true" if is_admin else "false"),
            ("X-Auth-Provider", provider),
            (REVOCATION_HEADER, "true" if checked else "false"),
            *extra,
        ]
        return json_answer(200, {"userId": user_id, "isAdmin": is_admin, "provider": provider,
                                 "revocationChecked": checked}, headers)

    forward_auth_doc: dict[str, Any] = {
        "description": "Authorization: Bearer <jwt or session id>. A value with a dot is a JWT, "
        "anything else a session id. Without Authorization, the session cookie "
        f"({browser.cookie_name}, VERIFIER_SESSION_COOKIE); a state-changing request that "
        "carries only the cookie must come from the site itself (Origin or Sec-Fetch-Site: "
        "same-origin), else 403 csrf_refused. Every HTTP method is accepted, since proxies "
        "forward the original one. With VERIFIER_LOGIN_URL, a refused browser (Accept: "
        "text/html, not XHR) gets 302 to the login page with rd=<the URL it asked for, on a "
        "VERIFIER_REDIRECT_HOSTS host>; through nginx (X-Original-URL) the 401 carries that "
        "Location instead.",
        "answer": AuthResult,
        "answer_headers": {**AUTH_HEADERS, **{
            header: f"the token's {claim!r} claim (VERIFIER_CLAIM_HEADERS); absent when the "
            f"token has none, or for a session id; {header}-Encoding: percent when encoded"
            for header, claim in claim_mapping}},
        "errors": (*TOKEN_ERRORS, *FORWARD_AUTH_ONLY, CsrfRefused, StoreUnavailable, NotReady),
        "security": ("bearerJwt", "session", "sessionCookie"),
    }
    summary = "Forward-auth for nginx auth_request, Traefik ForwardAuth, Envoy ext_authz"
    return [
        api.hot("/v1/verify", ["POST"], verify, "Verify a token", body=TokenRequest,
                body_required=False, answer=Verified,
                description="With ?explain=true and an admin key in Authorization (the token "
                "in the body), the answer is instead {\"verdict\": \"accepted\" or a code, "
                "\"steps\": [{\"step\", \"outcome\", \"rule\", \"values\", \"code\", "
                "\"detail\"}]}: every step of the pipeline, revocation included, never the "
                "signature or a key.",
                query={"explain": ("true: explain every step instead of answering (admin key)",
                                   {"type": "string", "enum": ["true", "false"]})},
                answer_headers={REVOCATION_HEADER: AUTH_HEADERS[REVOCATION_HEADER]},
                errors=(*TOKEN_ERRORS, StoreUnavailable, NotReady, Unauthorized, Forbidden),
                security=("bearerJwt", "")),
        api.hot("/v1/auth", FORWARD_AUTH_METHODS, forward_auth, summary, **forward_auth_doc),
        # Envoy ext_authz appends the original path
        api.hot("/v1/auth/<path:forwarded_path>", FORWARD_AUTH_METHODS, forward_auth, summary,
                prefix="/v1/auth", path_parameters={
                    "forwarded_path": "ignored: Envoy ext_authz appends the original path"},
                **forward_auth_doc),
    ]


AUTH_HEADERS = {
    "X-Auth-User-Id": "the user id; percent-encoded UTF-8 when X-Auth-User-Id-Encoding is "
    "'percent' (ids that are not printable ASCII)",
    "X-Auth-User-Id-Encoding": "'percent' when X-Auth-User-Id is percent-encoded",
    "X-Auth-Is-Admin": "true or false",
    "X-Auth-Provider": "the provider name (VERIFIER_PROVIDER_NAME)",
    REVOCATION_HEADER: "false when Redis was unreachable in open mode: signature only",
}
