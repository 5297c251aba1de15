"""One place per route: its path, methods, schemas and refusals, and the OpenAPI made from them.

Each app has its own ``Api``, built by its factory. Flask views are declared once, at import
time, in a ``Views`` collection (``@views.route(rule, methods, summary, schemas...)``); the
factory adds them to its Flask app and its ``Api`` with ``Api.add_views``. Hot routes
(``shared.web.hot``) are declared with ``Api.hot`` when the factory builds them. Either way the
declaration carries the marshmallow schemas of the body and of the answer and the ``Problem``
classes the route may raise; ``Api.document`` turns them into the OpenAPI 3.1 document with
apispec, the error codes read from the exception classes themselves. Nothing about a route is
written twice.

``operations_blueprint`` gives both services the same operational routes: ``/healthz``,
``/readyz``, ``/metrics``, ``/openapi.json`` and ``/docs`` (Swagger UI from the
swagger-ui-py package: no CDN, it renders on a machine with no internet).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import swagger_ui
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, Response, jsonify, send_from_directory
from marshmallow import Schema, fields

from shared.claims import NumericDate, StrictBoolean, StrictString
from shared.errors import (
    NotFound,
    NotReady,
    PayloadTooLarge,
    Problem,
    RequestInvalid,
    UnsupportedMediaType,
)
from shared.requestid import HEADER as REQUEST_ID_HEADER
from shared.web.hot import Handler, HotRoute
from shared.web.metrics import exposition
from shared.web.problems import PROBLEM_MIMETYPE, install_problem_handlers

OPENAPI_VERSION = "3.1.0"

SWAGGER_UI_FILES = Path(swagger_ui.__file__).parent / "static"
"""Swagger UI 5's own files, installed with the swagger-ui-py package."""

_RULE_PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")

BODY_PROBLEMS: tuple[type[Problem], ...] = (RequestInvalid, PayloadTooLarge, UnsupportedMediaType)
"""What any route with a JSON body may answer before its own rules run."""

REQUEST_ID = {REQUEST_ID_HEADER: "this request's id, on each of its log lines: the caller's "
              "X-Request-Id when it is 1 to 128 of A-Z a-z 0-9 - _ . : / + = @, else a new one"}
"""A header of every answer (``shared.requestid``)."""


class ProblemSchema(Schema):
    """RFC 7807 problem document; branch on ``code``, which never changes."""

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    code = fields.String(required=True)
    field = fields.String(metadata={"description": "the request field that was refused"})


class Status(Schema):
    """``{"status": "ok"}``."""

    status = fields.String(required=True)


@dataclass(frozen=True)
class Operation:
    """One route as the API description shows it."""

    rule: str  # the Flask rule: /v1/sessions/<session_id>
    methods: tuple[str, ...]
    summary: str
    description: str | None = None
    # a schema, or a JSON Schema dict over schemas ({"anyOf": [SchemaA, SchemaB]})
    body: type[Schema] | Schema | Mapping[str, Any] | None = None
    body_required: bool = True
    body_media_type: str = "application/json"  # of the request body
    status: int = 200
    answer: type[Schema] | None = None  # the JSON body of a success; None: no body
    media_type: str = "application/json"  # of a success with a body
    answer_headers: Mapping[str, str] = field(default_factory=dict)
    errors: tuple[type[Problem], ...] = ()
    security: tuple[str, ...] = ()  # scheme names; "" allows no credential
    # name: description, or (description, JSON schema) when the value is not any string
    query: Mapping[str, str | tuple[str, Mapping[str, Any]]] = field(default_factory=dict)
    # name: description, or (description, JSON schema) when the value is not any string
    path_parameters: Mapping[str, str | tuple[str, Mapping[str, Any]]] = field(
        default_factory=dict)
    tag: str | None = None
    # OpenAPI links from the success answer to other operations (by operationId): how a
    # stateful test (and a reader) goes from one call to the next
    links: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """The OpenAPI path: ``<session_id>`` becomes ``{session_id}``."""
        return _RULE_PARAMETER.sub(r"{\1}", self.rule)


@dataclass(frozen=True)
class DeclaredView:
    """A Flask view and its description, not yet added to an app."""

    rule: str
    methods: tuple[str, ...]
    summary: str
    documented: Mapping[str, Any]
    view: Callable[..., Any]


class Views:
    """A service's Flask views, declared at import time and added to each app it builds."""

    def __init__(self, name: str) -> None:
        self.name = name  # the Blueprint's name: endpoints are "<name>.<function>"
        self.declared: list[DeclaredView] = []

    def route(
        self, rule: str, methods: Iterable[str], summary: str, **documented: Any,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Declare a view: its rule, methods and what ``Operation`` documents."""

        def declare(view: Callable[..., Any]) -> Callable[..., Any]:
            self.declared.append(DeclaredView(rule, tuple(methods), summary, documented, view))
            return view

        return declare


class Api:
    """One app's routes and the OpenAPI document made from them."""

    def __init__(
        self, title: str, description: str,
        security_schemes: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.title = title
        self.description = description
        self.security_schemes = dict(security_schemes or {})
        self.operations: list[Operation] = []
        # query parameters whose values depend on this app's configuration (refine_query)
        self._query_refinements: dict[str, tuple[Mapping[str, Any], bool]] = {}

    def refine_query(self, name: str, schema: Mapping[str, Any], *, required: bool) -> None:
        """Document query parameter ``name`` of every route that takes it with this app's own
        schema (its configured values, say) and whether this app needs it."""
        self._query_refinements[name] = (dict(schema), required)

    def add_views(self, app: Flask, views: Views) -> None:
        """Add the declared views to ``app`` (one Blueprint) and describe them."""
        blueprint = Blueprint(views.name, views.name)
        for declared in views.declared:
            self.operations.append(Operation(declared.rule, declared.methods, declared.summary,
                                             **declared.documented))
            blueprint.add_url_rule(declared.rule, view_func=declared.view,
                                   methods=list(declared.methods))
        app.register_blueprint(blueprint)

    def hot(
        self, rule: str, methods: Iterable[str], handler: Handler, summary: str, *,
        prefix: str | None = None, **documented: Any,
    ) -> HotRoute:
        """A route answered on the event loop; ``prefix`` also serves every path below it."""
        methods = frozenset(methods)
        self.operations.append(Operation(rule, tuple(sorted(methods)), summary, **documented))
        path = prefix if prefix is not None else rule
        return HotRoute(path, rule, methods, handler, prefix=prefix is not None)

    def document(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document (built per call: small, and served rarely)."""
        plugin = MarshmallowPlugin()
        spec = APISpec(
            title=self.title, version="1", openapi_version=OPENAPI_VERSION,
            plugins=[plugin], info={"description": self.description},
        )
        # the claim schema's strict fields, as the JSON types they accept
        plugin.map_to_openapi_type(StrictString, fields.String)  # type: ignore[no-untyped-call]  # apispec: untyped
        plugin.map_to_openapi_type(StrictBoolean, fields.Boolean)  # type: ignore[no-untyped-call]  # apispec: untyped
        plugin.map_to_openapi_type(NumericDate, fields.Number)  # type: ignore[no-untyped-call]  # apispec: untyped
        for name, scheme in self.security_schemes.items():
            spec.components.security_scheme(name, dict(scheme))
        spec.components.schema("Problem", schema=ProblemSchema)
        by_path: dict[str, dict[str, Any]] = {}
        for operation in self.operations:
            entry = by_path.setdefault(operation.path, {})
            for method in operation.methods:
                entry[method.lower()] = self._operation(operation, method)
        for path, operations in by_path.items():
            spec.path(path=path, operations=operations)
        document: dict[str, Any] = spec.to_dict()
        return document

    def _operation(self, operation: Operation, method: str) -> dict[str, Any]:
        document: dict[str, Any] = {
            "summary": operation.summary,
            "operationId": operation_id(method, operation.path),
            "responses": {str(operation.status): _success(operation)},
        }
        if operation.description:
            document["description"] = operation.description
        if operation.tag:
            document["tags"] = [operation.tag]
        parameters = [
            {"name": name, "in": "path", "required": True, "description": text,
             "schema": dict(schema)}
            for name, (text, schema) in _path_parameters(operation).items()
        ]
        for name, documented in operation.query.items():
            text, schema = (documented, {"type": "string"}) if isinstance(documented, str) \
                else documented
            schema, required = self._query_refinements.get(name, (schema, False))
            parameters.append({"name": name, "in": "query", "required": required,
                               "description": text, "schema": dict(schema)})
        if parameters:
            document["parameters"] = parameters
        errors = list(operation.errors)
        if operation.body is not None and method not in ("GET", "HEAD"):
            document["requestBody"] = {
                "required": operation.body_required,
                "content": {operation.body_media_type: {"schema": operation.body}},
            }
            errors += BODY_PROBLEMS
        if operation.security:
            document["security"] = [{name: []} if name else {} for name in operation.security]
        for status, problems in _by_status(errors).items():
            document["responses"][str(status)] = _problems(problems)
        return document


def operation_id(method: str, path: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", path)
    return method.lower() + "".join(word[:1].upper() + word[1:] for word in words if word)


def _path_parameters(operation: Operation) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """Each path parameter: its description and JSON schema (any string, unless documented)."""
    described = {}
    for name in _RULE_PARAMETER.findall(operation.rule):
        documented = operation.path_parameters.get(name, "")
        described[name] = (documented, {"type": "string"}) if isinstance(documented, str) \
            else documented
    return described


def _success(operation: Operation) -> dict[str, Any]:
    response: dict[str, Any] = {"description": operation.summary}
    if operation.answer is not None:
        response["content"] = {operation.media_type: {"schema": operation.answer}}
    elif operation.media_type != "application/json":
        response["content"] = {operation.media_type: {"schema": {"type": "string"}}}
    if operation.links:
        response["links"] = {name: dict(link) for name, link in operation.links.items()}
    response["headers"] = {
        name: {"description": text, "schema": {"type": "string"}}
        for name, text in {**operation.answer_headers, **REQUEST_ID}.items()
    }
    return response


def _by_status(problems: Iterable[type[Problem]]) -> dict[int, list[type[Problem]]]:
    grouped: dict[int, list[type[Problem]]] = {}
    for problem in problems:
        known = grouped.setdefault(problem.status, [])
        if problem not in known:
            known.append(problem)
    return dict(sorted(grouped.items()))


def _problems(problems: list[type[Problem]]) -> dict[str, Any]:
    codes = list(dict.fromkeys(problem.code for problem in problems))
    descriptions = [
        f"`{problem.code}`: {(problem.__doc__ or problem.title).strip().splitlines()[0]}"
        for problem in problems
    ]
    schema = {"allOf": [{"$ref": "#/components/schemas/Problem"},
                        {"properties": {"code": {"enum": codes}}}]}
    response: dict[str, Any] = {
        "description": "; ".join(descriptions),
        "content": {PROBLEM_MIMETYPE: {"schema": schema}},
    }
    headers: dict[str, str] = {}
    for problem in problems:
        headers.update(problem.documented_headers)
    response["headers"] = {
        name: {"description": text, "schema": {"type": "string"}}
        for name, text in {**headers, **REQUEST_ID}.items()
    }
    return response


def operation_views(
    api: Api, readiness: Callable[[], tuple[bool, dict[str, Any]]],
    ready_answer: type[Schema] = Status, before_scrape: Callable[[], None] = lambda: None,
) -> Views:
    """``/healthz``, ``/readyz``, ``/metrics``, ``/openapi.json`` and ``/docs``, described.

    ``readiness`` answers (ready, what to report): the report is the body of a 200, and the
    ``extra`` members of the 503 problem. ``before_scrape`` brings the state gauges up to date
    (``shared.statemetrics``).
    """
    views = Views("operations")
    tag = "operations"

    @views.route("/healthz", ["GET"], "The process is alive", answer=Status, tag=tag)
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @views.route("/readyz", ["GET"], "Ready to serve: every dependency answers",
                 answer=ready_answer, errors=(NotReady,), tag=tag)
    def readyz() -> Response:
        ready, report = readiness()
        if not ready:
            # ``reason`` stays a member too: monitors read it from the earlier plain JSON answer
            reason = report.get("reason", "a dependency is unavailable.")
            raise NotReady(f"Not ready: {reason}", extra=report)
        return jsonify({"status": "ready", **report})

    @views.route("/metrics", ["GET"], "Prometheus metrics, summed over the workers",
                 media_type="text/plain", tag=tag)
    def metrics() -> Response:
        before_scrape()
        body, content_type = exposition()
        # content_type, not mimetype: Flask would add a second "; charset=utf-8"
        return Response(body, content_type=content_type)

    @views.route("/openapi.json", ["GET"], "This API description (OpenAPI 3.1)", tag=tag)
    def openapi() -> Response:
        return jsonify(api.document())

    @views.route("/docs", ["GET"], "This API description, to read (Swagger UI)",
                 media_type="text/html", tag=tag)
    def docs() -> Response:
        return Response(_DOCS_PAGE.replace("{title}", api.title), mimetype="text/html")

    @views.route("/docs/", ["GET"], "The same page, at /docs", status=308,
                 media_type="text/plain", answer_headers={"Location": "../docs"}, tag=tag)
    def docs_slash() -> Response:
        # relative, so a proxy's path prefix (/auth/docs/ -> /auth/docs) is kept: the page's
        # own relative links only resolve from /docs
        return Response("", status=308, headers={"Location": "../docs"}, mimetype="text/plain")

    @views.route("/docs/static/<path:name>", ["GET"], "Swagger UI's own files",
                 media_type="*/*", errors=(NotFound,), tag=tag)
    def docs_static(name: str) -> Response:
        # Swagger UI's own files, from the installed package: the page needs no CDN
        return send_from_directory(SWAGGER_UI_FILES, name, max_age=3600)

    return views


_DOCS_PAGE = r"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="stylesheet" href="docs/static/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/static/swagger-ui-bundle.js"></script>
  <script>
    // the document names no server; "Try it out" then calls the folder this page is in, so
    // behind a proxy's path prefix it reaches /prefix/v1/..., not the host's root
    fetch("openapi.json").then((answer) => answer.json()).then((spec) => {
      spec.servers = [{url: new URL(".", window.location.href).href.replace(/\/$/, "")}];
      window.ui = SwaggerUIBundle({spec: spec, dom_id: "#swagger-ui"});
    });
  </script>
</body>
</html>
"""



def service_flask(
    name: str, api: Api, readiness: Callable[[], tuple[bool, dict[str, Any]]], *,
    ready_answer: type[Schema] = Status, max_body_bytes: int,
    before_scrape: Callable[[], None] = lambda: None,
) -> Flask:
    """The Flask app both services start from: JSON, problem+json errors and the operational
    routes; each adds its own views (``Api.add_views``)."""
    app = Flask(name)
    # werkzeug answers 413 before the body is read past this many bytes (a chunked body: the
    # ServiceApp refuses a larger announced length before Flask sees the request)
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]  # DefaultJSONProvider has it
    install_problem_handlers(app)
    api.add_views(app, operation_views(api, readiness, ready_answer, before_scrape))
    return app
