"""The README's examples, run as a reader runs them, must do what the README says."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
REPO = Path(__file__).parents[1]
# The quick start's checkpoint folder, wherever the README puts it under /tmp.
CHECKPOINT = re.compile(r"/tmp/gpt-oss-[\w-]+")


def section(title: str) -> str:
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert found, f"README lost its {title!r} section"
    return found.group(1)


def reader_env(tmp_path: Path) -> dict[str, str]:
    """A reader's shell: this checkout importable, no config file, data home in tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSS_AGENT_")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        OSS_AGENT_CONFIG=str(tmp_path / "config.toml"),
        XDG_DATA_HOME=str(tmp_path / "xdg"),
    )
    return env


def test_harmony_quick_start_runs_and_prints_the_parsed_answer():
    snippet = re.search(r"The harmony format on its own:\n\n```python\n(.*?)```", README, re.S)
    assert snippet, "README lost its harmony quick start"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(snippet.group(1), {})
    assert out.getvalue() == "final 4\n"


def commands_of(block: str, tmp_path: Path) -> list[str]:
    commands = [line.split("#")[0].strip() for line in block.splitlines()]
    return [CHECKPOINT.sub(str(tmp_path / "ckpt"), c) for c in commands if c]


@pytest.mark.slow
@pytest.mark.docker
def test_cli_quick_start_with_no_model_answers_with_nano_and_python(tmp_path, sandbox_image):
    """The first command, as written: the notice, the python call and the answer shown."""
    quick_start = section("Quick start")
    (command,) = commands_of(re.search(r"```bash\n(.*?)```", quick_start, re.S).group(1), tmp_path)
    shown = re.search(r"```text\n(.*?)```", quick_start, re.S).group(1).splitlines()
    says_status = int(re.search(r"and exits with status (\d)", quick_start).group(1))
    done = subprocess.run(
        command, shell=True, capture_output=True, text=True, timeout=600, env=reader_env(tmp_path)
    )
    assert done.returncode == says_status, done.stdout + done.stderr
    assert "no model configured: using nano" in done.stderr
    out = done.stdout.splitlines()
    call = next(line for line in shown if line.startswith("→ python"))
    answer = next(line for line in shown if "**" in line)
    assert call in out and answer in out, done.stdout
    assert out[-1].startswith(shown[-1].split("(")[0]), done.stdout  # "answered ("


@pytest.mark.slow
def test_cli_quick_start_on_a_random_checkpoint_does_what_the_readme_says(tmp_path):
    quick_start = section("Quick start")
    block = re.findall(r"```bash\n(.*?)```", quick_start, re.S)[1]
    commands = commands_of(block, tmp_path)
    says_status = int(re.search(r"It\s+exits with status (\d)", quick_start).group(1))
    says_ends_with = re.search(r"ends with why the run\s+stopped: `([^`]+)`", quick_start)
    env = reader_env(tmp_path)
    for command in commands:
        done = subprocess.run(
            command, shell=True, capture_output=True, text=True, timeout=600, env=env
        )
        if " run " not in command:
            assert done.returncode == 0, done.stderr
            continue
        assert done.returncode == says_status, done.stdout + done.stderr
        assert "loading " in done.stderr and "loaded in " in done.stderr  # progress
        summary = done.stdout.rstrip().splitlines()[-1]
        assert summary.startswith(" ".join(says_ends_with.group(1).split())), done.stdout
        shown = done.stdout.rstrip().splitlines()[:-1]
        assert "".join(shown).strip(), "the run showed nothing of what the model produced"


@pytest.mark.slow
@pytest.mark.docker
def test_python_api_example_prints_what_its_comments_say(tmp_path, sandbox_image):
    snippet = re.search(r"```python\n(.*?)```", section("Python API"), re.S).group(1)
    promised = [
        line.split("# ")[-1] for line in snippet.splitlines() if line.strip().startswith("print(")
    ]
    (tmp_path / "example.py").write_text(snippet)
    done = subprocess.run(
        [sys.executable, "example.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=reader_env(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == promised
    assert (tmp_path / "session.json").exists()
