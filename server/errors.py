"""The API's one error shape: ``{"error": {"code": ..., "message": ...}}`` for every failure.

Handlers registered here turn every exception a request can raise (a bad parameter, an unknown
project or run, an unknown path, a bug) into that shape with the right HTTP status, and a
message a user can act on.
"""

from __future__ import annotations

import sys

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from waddle.server import wire

# Every error code the API answers with, over HTTP and on /ws alike, with its HTTP status
# (docs/api.md lists them). ``http_error`` is any other status a request can meet (405 ...).
CODES = {
    "invalid_parameter": 422,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    # Relaying (server/routes/ingest.py, server/intake.py).
    "invalid_batch": 422,
    "unsupported_encoding": 415,
    "hash_mismatch": 422,
    "too_large": 413,
    "conflict": 409,
    "unavailable": 503,
    "http_error": None,
    "internal": 500,
}


class ApiError(Exception):
    """An error meant for the API client: one of ``CODES``, with its status."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = CODES[code], code, message

    def response(self) -> Response:
        return error_response(self.status, self.code, self.message)


def not_found(message: str) -> ApiError:
    return ApiError("not_found", message)


def invalid(message: str) -> ApiError:
    return ApiError("invalid_parameter", message)


def unauthorized(message: str) -> ApiError:
    return ApiError("unauthorized", message)


def forbidden(message: str) -> ApiError:
    return ApiError("forbidden", message)


def error_response(status: int, code: str, message: str) -> Response:
    body = wire.dumps({"error": {"code": code, "message": message}})
    return Response(body, status_code=status, media_type="application/json")


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> Response:
        return error.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError) -> Response:
        parts = []
        for problem in error.errors():
            where = ".".join(str(part) for part in problem.get("loc", ()) if part != "query")
            parts.append(f"{where}: {problem.get('msg')}")
        return invalid("; ".join(parts)).response()

    @app.exception_handler(HTTPException)
    async def _http(request: Request, error: HTTPException) -> Response:
        code = "not_found" if error.status_code == 404 else "http_error"
        message = (
            f"no such endpoint: {request.url.path}" if error.status_code == 404 else error.detail
        )
        return error_response(error.status_code, code, str(message))

    @app.exception_handler(Exception)
    async def _bug(request: Request, error: Exception) -> Response:
        print(f"waddle serve: {request.url.path}: {error!r}", file=sys.stderr)
        return error_response(500, "internal", f"internal error: {error}")
