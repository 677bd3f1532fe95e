"""The ASGI application: routes, bearer-key check, OpenAI-shaped errors, shutdown."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from agent.server.chat import create_chat_completion
from agent.server.completions import create_completion
from agent.server.errors import APIError, api_error_handler, unexpected_error_handler
from agent.server.responses import create_response, get_response
from agent.server.session import Limits, ServerState, ToolFactory
from agent.server.store import ResponseStore
from runtime.engine import Engine
from tools.base import Tool

OPEN_PATHS = frozenset({"/health"})


def create_app(
    engine: Engine,
    *,
    model_name: str = "gpt-oss",
    tool_factory: ToolFactory | None = None,
    builtin_tools: Sequence[str] = (),
    api_key: str | None = None,
    limits: Limits | None = None,
    store: ResponseStore | None = None,
    store_folder: str | Path | None = None,
) -> Starlette:
    """The server for `engine` (thread-safe: `runtime.batch.BatchedEngine` for a local
    model). `tool_factory(names)` makes fresh builtin tools (`browser`, `python`) for one
    request; `builtin_tools` are the names it can make. With `api_key`, every route but
    /health needs `Authorization: Bearer <key>`."""
    state = ServerState(
        engine=engine,
        model_name=model_name,
        tool_factory=tool_factory or _no_builtin_tools,
        builtin_tools=frozenset(builtin_tools),
        store=store if store is not None else ResponseStore(folder=store_folder),
        limits=limits or Limits(),
        api_key=api_key,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        # In-flight requests have finished (or the server gave up waiting); no new ones come.
        close = getattr(engine, "close", None)
        if close is not None:
            close()

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", get_model, methods=["GET"]),
            Route("/v1/completions", create_completion, methods=["POST"]),
            Route("/v1/chat/completions", create_chat_completion, methods=["POST"]),
            Route("/v1/responses", create_response, methods=["POST"]),
            Route("/v1/responses/{response_id}", get_response, methods=["GET"]),
        ],
        exception_handlers={
            APIError: api_error_handler,
            404: _not_found,
            405: _not_allowed,
            Exception: unexpected_error_handler,
        },
        lifespan=lifespan,
    )
    app.state.server = state
    return _BearerKey(app, api_key) if api_key else app


def _no_builtin_tools(names: Sequence[str]) -> list[Tool]:
    return []


class _BearerKey:
    """Refuses requests without the server's key (constant-time comparison)."""

    def __init__(self, app: Starlette, key: str) -> None:
        self.app = app
        self.state = app.state
        self.expected = f"Bearer {key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not secrets.compare_digest(given, self.expected):
                error = APIError(
                    401,
                    "missing or wrong API key: send 'Authorization: Bearer <key>' with the "
                    "key the server was started with",
                    code="invalid_api_key",
                )
                await error.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def health(request: Request) -> Response:
    state: ServerState = request.app.state.server
    engine = state.engine
    return JSONResponse(
        {
            "status": "ok",
            "model": state.model_name,
            "in_flight": state.in_flight,
            "running": getattr(engine, "running", None),
            "waiting": getattr(engine, "waiting", None),
        }
    )


def _model(state: ServerState) -> dict:
    return {
        "id": state.model_name,
        "object": "model",
        "created": state.created,
        "owned_by": "oss-agent",
    }


async def list_models(request: Request) -> Response:
    state: ServerState = request.app.state.server
    return JSONResponse({"object": "list", "data": [_model(state)]})


async def get_model(request: Request) -> Response:
    state: ServerState = request.app.state.server
    state.check_model(request.path_params["model"])
    return JSONResponse(_model(state))


async def _not_found(request: Request, exc: Exception) -> Response:
    return APIError(404, f"no route {request.url.path}", code="not_found").response()


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return APIError(
        405, f"{request.method} is not allowed on {request.url.path}", code="method_not_allowed"
    ).response()
