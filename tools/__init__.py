"""What the model can act with: python (Docker sandbox), browser, user functions."""

from tools.base import Tool, ToolError, tool_message

__all__ = ["Tool", "ToolError", "tool_message"]
