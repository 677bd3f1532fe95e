"""`oss-agent run` and `oss-agent chat`, with the model's server replaced by a scripted one."""

from __future__ import annotations

import json

import pytest
from scripted_engine import ScriptedEngine, analysis, final, sampled
from typer.testing import CliRunner

from agent.cli import app
from agent.config import ConfigError, load_settings


@pytest.fixture
def engine(monkeypatch, tmp_path):
    """Every `--model http://...` gets this scripted engine; no config file is read."""
    monkeypatch.setenv("OSS_AGENT_CONFIG", str(tmp_path / "none.toml"))
    for name in ("MODEL", "EFFORT", "TOOLS"):
        monkeypatch.delenv(f"OSS_AGENT_{name}", raising=False)
    scripted = ScriptedEngine([])
    monkeypatch.setattr("runtime.remote.connect", lambda url, **kw: scripted)
    return scripted


runner = CliRunner()


def test_run_streams_reasoning_and_answer(engine) -> None:
    engine.turns.append(sampled(analysis("Just greet."), final("Hello!")))
    out = runner.invoke(app, ["run", "hi", "--model", "http://x:8000", "--effort", "low"])
    assert out.exit_code == 0, out.output
    assert "Just greet." in out.output and "Hello!" in out.output
    assert "[final] 1 turns" in out.output
    assert "Reasoning: low" in engine.prompt_text(0)


def test_run_json_and_save_then_resume(engine, tmp_path) -> None:
    engine.turns += [sampled(final("4")), sampled(final("8"))]
    path = tmp_path / "s.json"
    out = runner.invoke(app, ["run", "2+2?", "-m", "http://x", "--json", "--save", str(path)])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert (result["final_output"], result["stop_reason"]) == ("4", "final")
    assert result["conversation"]["messages"][-1]["content"][0]["text"] == "4"

    out = runner.invoke(app, ["run", "times 2?", "-m", "http://x", "--resume", str(path)])
    assert out.exit_code == 0, out.output
    assert "<|channel|>final<|message|>4<|end|><|start|>user<|message|>times 2?" in (
        engine.prompt_text(1)
    )
    saved = json.loads(path.read_text())
    assert [r["final_output"] for r in saved["runs"]] == ["4", "8"]


def test_run_limit_exits_nonzero(engine) -> None:
    engine.turns.append(sampled(analysis("long " * 50), final("x")))
    out = runner.invoke(app, ["run", "go", "-m", "http://x", "--max-seconds", "0"])
    assert out.exit_code == 1 and "[timeout]" in out.output


def test_no_model_means_the_bundled_nano_with_python_and_a_notice(engine, capsys) -> None:
    settings = load_settings({})
    assert (settings.model, settings.tools) == ("nano", ["python"])
    notice = capsys.readouterr().err
    assert "small demo model" in notice and "hf download openai/gpt-oss-20b" in notice
    assert load_settings({"tools": ""}).tools == []  # tools the user chose stay chosen


def test_unknown_tool(engine) -> None:
    out = runner.invoke(app, ["run", "hi", "-m", "http://x", "--tools", "shell"])
    assert out.exit_code == 2 and "unknown tool 'shell'" in out.output


def test_chat_session_with_commands(engine, tmp_path) -> None:
    engine.turns += [sampled(final("Hi!")), sampled(final("Again."))]
    path = tmp_path / "chat.json"
    script = f"/effort high\nhello\n/tools\nmore\n/save {path}\n/reset\n/exit\n"
    out = runner.invoke(app, ["chat", "-m", "http://x"], input=script)
    assert out.exit_code == 0, out.output
    assert "reasoning effort: high" in out.output and "tools: none" in out.output
    assert "Hi!" in out.output and "Again." in out.output
    assert "Reasoning: high" in engine.prompt_text(0)
    assert "<|message|>Hi!<|end|><|start|>user<|message|>more" in engine.prompt_text(1)
    assert len(json.loads(path.read_text())["runs"]) == 2


def test_settings_precedence(tmp_path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('model = "/ckpt"\neffort = "low"\ntools = ["python"]\nmax_turns = 3\n')
    env = {"OSS_AGENT_CONFIG": str(config), "OSS_AGENT_EFFORT": "HIGH"}
    settings = load_settings({"tools": "browser,python", "max_turns": None}, env=env)
    assert (settings.model, settings.effort) == ("/ckpt", "high")
    assert (settings.tools, settings.max_turns) == (["browser", "python"], 3)
    with pytest.raises(ConfigError, match="effort"):
        load_settings({"effort": "max"}, env=env)
