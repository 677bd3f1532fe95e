"""PythonTool as the agent sees it: the namespace it declares, and a call answered."""

from __future__ import annotations

import asyncio

import pytest

from agent.harmony import Author, Message, Role
from agent.harmony.builtin_tools import PYTHON_DESCRIPTION
from tools.python import PythonSession, PythonTool, SandboxConfig, python_namespace


def test_namespace_states_the_real_behaviour():
    ns = PythonTool(timeout=2).namespace()
    assert ns.name == "python"
    assert ns.tools == []
    official_usage = PYTHON_DESCRIPTION.split("\n\n")[0]
    assert ns.description == (
        f"{official_usage}\n\n"
        "When you send a message containing Python code to python, it will be executed in a "
        "stateful Jupyter notebook environment. python will respond with the output of the "
        "execution or time out after 2.0 seconds. The drive at '/mnt/data' can be used to "
        "save and persist user files (up to 256 MiB in all). Internet access for this session "
        "is disabled."
    )
    larger = python_namespace(SandboxConfig(data_size="1536m")).description
    assert "(up to 1.5 GiB in all)" in larger
    assert python_namespace(SandboxConfig()).description.count("120.0 seconds") == 1
    online = python_namespace(SandboxConfig(network=True)).description
    assert online.endswith("Internet access for this session is enabled.")


@pytest.mark.docker
def test_a_call_is_answered_by_a_python_tool_message_on_the_same_channel(sandbox_image):
    def call(code: str, channel: str) -> Message:
        return (
            Message.from_role_and_content(Role.ASSISTANT, code)
            .with_channel(channel)
            .with_recipient("python")
        )

    async def scenario():
        async with PythonTool(timeout=5) as tool:
            assert tool.handles("python")
            [first] = await tool.call(call("x = 6\nprint(x * 7)", "analysis"))
            [second] = await tool.call(call("x + 1", "commentary"))
            return first, second

    first, second = asyncio.run(scenario())
    assert first.author == Author(role=Role.TOOL, name="python")
    assert first.recipient == "assistant"
    assert first.channel == "analysis"
    assert first.text == "42\n"
    assert (second.channel, second.text) == ("commentary", "7\n")


def test_local_backend_works_and_warns_that_it_is_unsandboxed(tmp_path):
    with pytest.warns(UserWarning, match="directly on this machine"):
        session = PythonSession(backend="local", timeout=1.5, data_dir=tmp_path).start()
    with session:
        session.run("import os; x = 41")
        assert session.run("x + 1") == "42\n"
        assert session.run("os.getcwd()") == f"{str(tmp_path)!r}\n"
        out = session.run("import time\nwhile True:\n    time.sleep(0.01)")
        assert out.endswith("was interrupted; variables and imports are kept.]")
    local = python_namespace(SandboxConfig(backend="local")).description
    assert "The current working directory can be used to save and persist user files." in local
