"""Reading a request body: bounded in size, JSON, validated by the endpoint's schema."""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from agent.server.errors import APIError, invalid_fields

ModelT = TypeVar("ModelT", bound=BaseModel)


async def parse_body(request: Request, schema: type[ModelT], max_bytes: int) -> ModelT:
    """400 for a body that is not a JSON object, 413 past `max_bytes`, 422 when the fields
    do not fit `schema`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > max_bytes:
            raise _too_large(max_bytes)
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise APIError(400, f"the body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, "the body must be a JSON object", code="invalid_json")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise invalid_fields(exc) from None


def _too_large(max_bytes: int) -> APIError:
    return APIError(
        413,
        f"the request body is larger than this server accepts ({max_bytes} bytes)",
        code="request_too_large",
    )
