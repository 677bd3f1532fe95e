"""What the model can act with: python (Docker sandbox), browser, user functions."""

import _oss_agent_shadowing  # noqa: F401  (a user's own tools.py etc. must not hide our packages)
from tools.base import Tool, ToolError, tool_message
from tools.functions import FunctionTool, function_tool

__all__ = ["FunctionTool", "Tool", "ToolError", "function_tool", "tool_message"]
