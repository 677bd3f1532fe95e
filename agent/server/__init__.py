"""The OpenAI-compatible HTTP server (`oss-agent serve`): Responses, Chat Completions and
token-id Completions over the agent loop and a batched engine."""

from agent.server.app import create_app
from agent.server.session import Limits
from agent.server.store import ResponseStore

__all__ = ["Limits", "ResponseStore", "create_app"]
