"""Prometheus metrics of the HTTP layer; domains define their own next to their code."""

from __future__ import annotations

import re
import time

from fastapi import FastAPI
from prometheus_client import Counter, Histogram
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "edgeplane_http_requests_total", "HTTP requests handled.", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "edgeplane_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class RouteTemplates:
    """Maps a request path to its route template, so ids stay out of metric labels.

    Built once from the OpenAPI schema, which lists every route with its full path.
    """

    def __init__(self) -> None:
        self._patterns: list[tuple[re.Pattern[str], str]] | None = None

    def template(self, scope: Scope) -> str:
        if self._patterns is None:
            app = scope.get("app")
            if not isinstance(app, FastAPI):
                return "unmatched"
            paths = app.openapi().get("paths", {})
            self._patterns = [(compile_path(path)[0], path) for path in paths]
        path = scope.get("path", "")
        for pattern, template in self._patterns:
            if pattern.match(path):
                return template
        return "unmatched"


class PrometheusMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.routes = RouteTemplates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status_code = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = self.routes.template(scope)
            method = scope["method"]
            HTTP_REQUESTS.labels(method, route, str(status_code)).inc()
            HTTP_LATENCY.labels(method, route).observe(time.monotonic() - started)
