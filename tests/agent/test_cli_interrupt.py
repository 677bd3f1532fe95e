"""Ctrl-C in `oss-agent run` and `chat`: a real CLI process, a real sandboxed kernel, a
model server on loopback, and SIGINT sent as a terminal would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from scripted_engine import ENC, final, raw, sampled

from tools.python.docker_backend import owned_filters

ROOT = Path(__file__).parents[2]
# A cell that runs for two minutes in a child process (visible in the container's process
# list, so the test knows when the cell runs).
SLOW_CELL = raw(
    "<|channel|>analysis to=python code<|message|>"
    'import subprocess\nsubprocess.run(["sleep", "120"])<|call|>'
)
STUBBORN_CELL = raw(
    "<|channel|>analysis to=python code<|message|>"
    "import signal, subprocess\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    'subprocess.run(["sleep", "120"])<|call|>'
)


class Cli:
    """`oss-agent ARGS` in its own process; its output is collected as it comes."""

    def __init__(self, args: list[str], tmp_path: Path) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "OSS_AGENT_CONFIG": str(tmp_path / "none.toml"),
            "PYTHONUNBUFFERED": "1",
            "COLUMNS": "200",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from agent.cli import main; main()", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.output = ""
        self._lock = threading.Lock()
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        for chunk in iter(lambda: self.proc.stdout.read(1), ""):
            with self._lock:
                self.output += chunk

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"{text!r} never came; output so far:\n{self.output}")
            time.sleep(0.05)

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def interrupt(self) -> None:
        self.proc.send_signal(signal.SIGINT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def cli(tmp_path):
    started: list[Cli] = []

    def start(*args: str) -> Cli:
        started.append(Cli(list(args), tmp_path))
        return started[-1]

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def server(model_server):
    """A vLLM-like loopback server replaying the given turns."""
    return lambda turns: model_server("vllm", turns)


def wait_for_cell(docker_client, pid: int, timeout: float = 90) -> None:
    """Until the sandbox of process `pid` runs the cell's `sleep`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for container in docker_client.containers.list(filters=owned_filters(pid)):
            processes = container.top().get("Processes") or []
            if any("sleep 120" in " ".join(p) for p in processes):
                return
        time.sleep(0.2)
    raise AssertionError("the cell never started")


def sandboxes_of(docker_client, pid: int) -> list:
    return docker_client.containers.list(all=True, filters=owned_filters(pid))


def test_ctrl_c_in_run_interrupts_the_cell_and_exits_promptly(
    docker_client, sandbox_image, server, cli
) -> None:
    model = server([SLOW_CELL])
    run = cli("run", "go", "--model", model.url, "--tools", "python")
    wait_for_cell(docker_client, run.proc.pid)

    started = time.monotonic()
    run.interrupt()
    assert run.proc.wait(timeout=30) == 130, run.output
    assert time.monotonic() - started < 15, run.output
    assert "interrupted" in run.output
    assert sandboxes_of(docker_client, run.proc.pid) == []


def test_a_second_ctrl_c_forces_the_exit(docker_client, sandbox_image, server, cli) -> None:
    model = server([STUBBORN_CELL])
    run = cli("run", "go", "--model", model.url, "--tools", "python")
    wait_for_cell(docker_client, run.proc.pid)

    run.interrupt()  # the cell ignores the interrupt
    time.sleep(1.0)
    assert run.proc.poll() is None
    started = time.monotonic()
    run.interrupt()
    assert run.proc.wait(timeout=30) == 130, run.output
    assert time.monotonic() - started < 10, run.output
    assert "forced exit" in run.output
    assert sandboxes_of(docker_client, run.proc.pid) == []


def test_ctrl_c_in_chat_cancels_the_reply_and_keeps_the_conversation(
    docker_client, sandbox_image, server, cli
) -> None:
    model = server([sampled(final("Hi there!")), SLOW_CELL, sampled(final("Back again."))])
    chat = cli("chat", "--model", model.url, "--tools", "python")
    chat.send("hello")
    chat.wait_for("Hi there!")
    chat.send("run something slow")
    wait_for_cell(docker_client, chat.proc.pid)

    started = time.monotonic()
    chat.interrupt()
    chat.wait_for("cancelled", timeout=15)
    assert time.monotonic() - started < 15
    chat.send("are you there?")
    chat.wait_for("Back again.")
    chat.send("/exit")
    assert chat.proc.wait(timeout=30) == 0, chat.output

    third = model.prompt(2)

    text = ENC.decode(third)
    assert "hello" in text and "Hi there!" in text  # the conversation went on
    assert "run something slow" not in text  # the cancelled exchange was rolled back
    assert text.endswith("<|start|>user<|message|>are you there?<|end|><|start|>assistant")
