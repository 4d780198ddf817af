"""create_app(): middleware, error handlers, routers and the dashboard's static files."""

from __future__ import annotations

from pathlib import Path

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse
from starlette.staticfiles import StaticFiles

from server.api import API_PREFIX, build_router
from server.core.config import Settings, get_settings
from server.core.errors import install_error_handlers, problem
from server.core.logging import configure_logging
from server.core.metrics import PrometheusMiddleware

SOURCE_WEB_DIST = Path(__file__).resolve().parent.parent / "web" / "dist"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)
    app = FastAPI(
        title="EdgePlane",
        version="0.1.0",
        summary="Control plane for edge fraud-scoring fleets.",
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.add_middleware(PrometheusMiddleware)
    app.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID")
    install_error_handlers(app)
    app.include_router(build_router())
    _mount_dashboard(app, settings.web.dist_dir or SOURCE_WEB_DIST)
    return app


def _mount_dashboard(app: FastAPI, dist: Path) -> None:
    """Serve the built dashboard at /, with deep links falling back to index.html."""
    dist = dist.resolve()
    index = dist / "index.html"
    if not index.is_file():

        @app.get("/", include_in_schema=False)
        def dashboard_missing() -> JSONResponse:
            return problem(
                404, "the dashboard is not built; run `npm --prefix web run build`", docs="/docs"
            )

        return
    app.mount("/assets", StaticFiles(directory=dist / "assets"), name="assets")

    @app.get("/{path:path}", include_in_schema=False, response_model=None)
    def dashboard(path: str) -> FileResponse | JSONResponse:
        if path.startswith(API_PREFIX.strip("/")):
            return problem(404, f"no API route at /{path}")
        candidate = (dist / path).resolve()
        if path and candidate.is_file() and dist in candidate.parents:
            return FileResponse(candidate)
        return FileResponse(index)
