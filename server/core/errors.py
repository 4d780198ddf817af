"""Domain errors and their one translation into RFC 9457 problem details."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from asgi_correlation_id import correlation_id
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class DomainError(Exception):
    """Base of every error a service raises on purpose; subclasses set the HTTP status."""

    status_code: int = HTTPStatus.BAD_REQUEST

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(DomainError):
    status_code = HTTPStatus.NOT_FOUND


class Conflict(DomainError):
    status_code = HTTPStatus.CONFLICT


class InvalidInput(DomainError):
    status_code = HTTPStatus.UNPROCESSABLE_ENTITY


class Unauthenticated(DomainError):
    status_code = HTTPStatus.UNAUTHORIZED


class Forbidden(DomainError):
    status_code = HTTPStatus.FORBIDDEN


class TooManyRequests(DomainError):
    status_code = HTTPStatus.TOO_MANY_REQUESTS


def problem(status: int, detail: str, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    request_id = correlation_id.get()
    if request_id:
        body["request_id"] = request_id
    headers = {"WWW-Authenticate": "Bearer"} if status == HTTPStatus.UNAUTHORIZED else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return problem(exc.status_code, exc.detail, **exc.extra)


def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    response = problem(exc.status_code, str(exc.detail))  # detail is always a string here
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in exc.errors()
    ]
    first: dict[str, Any] = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"])
    return problem(
        HTTPStatus.UNPROCESSABLE_ENTITY, f"{where}: {message}" if where else message, errors=errors
    )


def _integrity_error(_: Request, exc: Exception) -> JSONResponse:
    logger.info("integrity error: %s", exc)
    return problem(HTTPStatus.CONFLICT, "the change conflicts with existing data")


def _data_error(_: Request, exc: Exception) -> JSONResponse:
    logger.info("data error: %s", exc)
    return problem(HTTPStatus.UNPROCESSABLE_ENTITY, "a value is out of range or malformed")


def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=exc)
    return problem(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error; quote the request id")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(Exception, _unexpected_error)
