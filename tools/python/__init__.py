"""The model's `python` tool: a stateful Jupyter kernel in a locked-down Docker container.

    from tools.python import PythonSession, PythonTool, SandboxConfig

`PythonSession` runs code strings for any caller; `PythonTool` is the agent's wrapper.
"""

from tools.python.config import SandboxConfig
from tools.python.errors import SandboxError
from tools.python.session import PythonSession
from tools.python.tool import PythonTool, python_namespace

__all__ = ["PythonSession", "PythonTool", "SandboxConfig", "SandboxError", "python_namespace"]
