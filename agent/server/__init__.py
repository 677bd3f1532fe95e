"""The OpenAI-compatible HTTP server (`oss-agent serve`): Responses, Chat Completions and
token-id Completions over the agent loop and a batched engine.

    from agent.server import create_app

The names load on first use, so the CLI (which imports `agent.server.cli`) starts fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "create_app": "agent.server.app",
    "Limits": "agent.server.session",
    "ResponseStore": "agent.server.store",
}

if TYPE_CHECKING:
    from agent.server.app import create_app
    from agent.server.session import Limits
    from agent.server.store import ResponseStore

__all__ = ["Limits", "ResponseStore", "create_app"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'agent.server' has no attribute {name!r}")
