"""oss-agent: run gpt-oss models as tool-using agents.

    from agent import Agent
    from tools.functions import function_tool

The names below load on first use, so `import agent.harmony` (which `tools` needs) does
not pull in the loop and cannot import `tools` circularly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import _oss_agent_shadowing  # noqa: F401  (a user's own tools.py etc. must not hide our packages)

__version__ = "0.1.0"

_EXPORTS = {
    "Agent": "agent.loop",
    "RunResult": "agent.result",
    "StopReason": "agent.result",
    "ToolCall": "agent.result",
    "TurnStats": "agent.result",
    "Usage": "agent.result",
}

if TYPE_CHECKING:
    from agent.loop import Agent
    from agent.result import RunResult, StopReason, ToolCall, TurnStats, Usage

__all__ = ["Agent", "RunResult", "StopReason", "ToolCall", "TurnStats", "Usage"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'agent' has no attribute {name!r}")
