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


@pytest.mark.slow
def test_cli_quick_start_does_what_the_readme_says(tmp_path):
    quick_start = section("Quick start")
    commands = re.search(r"```bash\n(.*?)```", quick_start, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in commands.splitlines()]
    commands = [CHECKPOINT.sub(str(tmp_path / "ckpt"), c) for c in commands if c]
    says_status = int(re.search(r"exits with status (\d)", quick_start).group(1))
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
def test_python_api_example_runs_against_the_quick_start_checkpoint(tmp_path):
    from runtime.testing import write_random_checkpoint

    snippet = re.search(r"```python\n(.*?)```", section("Python API"), re.S).group(1)
    assert CHECKPOINT.search(snippet), "the example should use the quick start's checkpoint"
    checkpoint = write_random_checkpoint(tmp_path / "ckpt", "mini")
    (tmp_path / "example.py").write_text(CHECKPOINT.sub(str(checkpoint), snippet))
    done = subprocess.run(
        [sys.executable, "example.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=reader_env(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r" (final|max_tokens) prompt_tokens=\d+", done.stdout), done.stdout
    assert (tmp_path / "session.json").exists()
