"""Errors in the OpenAI shape: `{"error": {"message", "type", "param", "code"}}`.

Every failure a request can meet ends here with its proper status; an unexpected one
becomes a 500 that names no internals (the traceback goes to the server log only).
"""

from __future__ import annotations

import logging

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from tools.base import validation_problems

log = logging.getLogger("oss_agent.server")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


class APIError(Exception):
    """A request the server will not carry out, and why."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": _TYPES.get(self.status, "invalid_request_error"),
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def invalid_fields(error: ValidationError) -> APIError:
    """A body that parsed as JSON but does not fit the endpoint's schema: 422."""
    first = error.errors(include_url=False)[0]
    param = ".".join(str(p) for p in first["loc"]) or None
    return APIError(
        422, f"invalid request: {validation_problems(error)}", param=param, code="invalid_value"
    )


async def api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return exc.response()


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error in %s %s", request.method, request.url.path)
    return APIError(500, "internal server error; see the server log").response()
