"""What the model can act with: python (Docker sandbox), browser, user functions."""

from tools.base import Tool, ToolError, tool_message
from tools.functions import FunctionTool, function_tool

__all__ = ["FunctionTool", "Tool", "ToolError", "function_tool", "tool_message"]
