"""`oss-agent model ...` and the random checkpoint writer."""

import json

import torch
from runtime_helpers import TINY, prompt
from safetensors import safe_open
from typer.testing import CliRunner

import runtime.testing
from agent.cli import app
from runtime import load_model
from runtime.config import PRESETS, ModelConfig

runner = CliRunner()


def test_model_random_then_info(tmp_path):
    result = runner.invoke(app, ["model", "random", str(tmp_path), "--preset", "tiny"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["model", "info", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "layout: original" in result.output
    assert "num_experts: 8" in result.output
    assert "memory (experts packed MXFP4, rest bf16)" in result.output


def test_model_info_reports_a_broken_checkpoint(tmp_path):
    result = runner.invoke(app, ["model", "info", str(tmp_path / "missing")])
    assert result.exit_code == 2  # a wrong path: nothing done (README: exit codes)
    assert "no such checkpoint folder" in result.output


def test_model_random_rejects_an_unknown_preset(tmp_path):
    result = runner.invoke(app, ["model", "random", str(tmp_path), "--preset", "7b"])
    assert result.exit_code == 2
    assert not (tmp_path / "config.json").exists()


def test_random_checkpoint_uses_the_real_formats(tiny_original, tiny_hf):
    with safe_open(tiny_original / "model.safetensors", "pt") as f:
        assert f.get_slice("block.0.mlp.mlp1_weight.blocks").get_dtype() == "U8"
        assert f.get_slice("block.0.mlp.mlp1_weight.scales").get_shape() == [8, 128, 2]
        assert f.get_slice("block.0.attn.norm.scale").get_dtype() == "F32"
        assert f.get_slice("block.0.attn.qkv.weight").get_dtype() == "BF16"
    assert set(json.loads((tiny_original / "config.json").read_text())) == set(TINY.to_original())
    hf_config = json.loads((tiny_hf / "config.json").read_text())
    assert hf_config["model_type"] == "gpt_oss"
    assert ModelConfig.from_dict(hf_config) == TINY
    with safe_open(tiny_hf / "model.safetensors", "pt") as f:
        assert f.get_slice("model.layers.3.mlp.experts.down_proj_blocks").get_shape() == [
            8,
            64,
            2,
            16,
        ]


def test_large_checkpoints_are_sharded_with_an_index(tmp_path, monkeypatch, tiny_original):
    monkeypatch.setattr(runtime.testing, "SHARD_BYTES", 1)
    folder = runtime.testing.write_random_checkpoint(tmp_path, TINY, seed=1, layout="hf")
    shards = sorted(folder.glob("*.safetensors"))
    assert len(shards) == TINY.num_hidden_layers + 1
    assert (folder / "model.safetensors.index.json").exists()
    tokens = prompt(12)
    sharded = load_model(folder, dtype=torch.float32).logits(tokens)
    single = load_model(tiny_original, dtype=torch.float32).logits(tokens)
    assert torch.equal(sharded, single)


def test_presets_have_the_published_sizes():
    def total(name):
        counts = PRESETS[name].param_counts()
        return counts["dense"] + counts["experts"]

    assert round(total("20b") / 1e9, 1) == 20.9
    assert round(total("120b") / 1e9, 1) == 116.8
    assert round(PRESETS["20b"].param_counts()["active"] / 1e9, 1) == 3.6
    assert PRESETS["20b-4experts"].num_experts == PRESETS["20b-4experts"].experts_per_token
