"""`PythonTool`: the model's `python` namespace, answered by a lazily started `PythonSession`."""

from __future__ import annotations

from typing import Any

from agent.harmony import Message, ToolNamespaceConfig
from tools.base import Tool, tool_message
from tools.python.config import SandboxConfig, size_in_bytes
from tools.python.session import PythonSession

# The first paragraph of the official description, unchanged (see agent.harmony.builtin_tools).
_USAGE = (
    "Use this tool to execute Python code in your chain of thought. The code will not be "
    "shown to the user. This tool should be used for internal reasoning, but not for code "
    "that is intended to be visible to the user (e.g. when creating plots, tables, or files)."
)


def python_namespace(config: SandboxConfig) -> ToolNamespaceConfig:
    """The official `python` namespace with its facts made true for `config`."""
    if config.backend == "docker":
        size = size_in_bytes(config.data_size)
        quota = f"{size / 2**30:g} GiB" if size >= 2**30 else f"{size / 2**20:g} MiB"
        drive = (
            "The drive at '/mnt/data' can be used to save and persist user files "
            f"(up to {quota} in all)."
        )
        online = config.network
    else:
        drive = "The current working directory can be used to save and persist user files."
        online = True
    description = (
        f"{_USAGE}\n\n"
        "When you send a message containing Python code to python, it will be executed in a "
        "stateful Jupyter notebook environment. python will respond with the output of the "
        f"execution or time out after {float(config.timeout)} seconds. {drive} "
        f"Internet access for this session is {'enabled' if online else 'disabled'}."
    )
    return ToolNamespaceConfig(name="python", description=description, tools=[])


class PythonTool(Tool):
    """The `python` tool: each call's text is code run in the session's kernel.

    The kernel (and its container) starts on the first call and lives until `aclose()`.
    """

    name = "python"

    def __init__(self, config: SandboxConfig | None = None, **options: Any) -> None:
        """`options` are SandboxConfig fields, overriding those of `config`."""
        self._session = PythonSession(config, **options)
        self.config = self._session.config

    def namespace(self) -> ToolNamespaceConfig:
        return python_namespace(self.config)

    async def call(self, message: Message) -> list[Message]:
        text = await self._session.arun(message.text)
        return [tool_message(message, text, author_name=self.name)]

    async def aclose(self) -> None:
        await self._session.aclose()
