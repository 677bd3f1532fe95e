"""Each way a checkpoint folder can be broken gives an error naming what and where."""

import json
import shutil

import pytest
from safetensors.torch import load_file, save_file

from runtime import CheckpointError, ConfigError, load_model


@pytest.fixture
def broken(tiny_original, tmp_path):
    """A private copy of the tiny checkpoint to damage."""
    return shutil.copytree(tiny_original, tmp_path / "ckpt")


def rewrite(folder, change):
    file = folder / "model.safetensors"
    tensors = load_file(file)
    change(tensors)
    save_file(tensors, file)


def test_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint folder"):
        load_model(tmp_path / "nowhere")


def test_folder_without_config(tmp_path):
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        load_model(tmp_path)


def test_missing_tensor(broken):
    rewrite(broken, lambda t: t.pop("block.2.attn.sinks"))
    with pytest.raises(CheckpointError, match=r"'block\.2\.attn\.sinks' is missing.*re-download"):
        load_model(broken)


def test_missing_tensor_in_hf_layout(tiny_hf, tmp_path):
    folder = shutil.copytree(tiny_hf, tmp_path / "hf")
    rewrite(folder, lambda t: t.pop("model.layers.1.self_attn.k_proj.weight"))
    with pytest.raises(CheckpointError, match=r"model\.layers\.1\.self_attn\.k_proj\.weight"):
        load_model(folder)


def test_misshapen_tensor(broken):
    def shrink(tensors):
        tensors["block.0.mlp.mlp1_bias"] = tensors["block.0.mlp.mlp1_bias"][:, :10].contiguous()

    rewrite(broken, shrink)
    with pytest.raises(CheckpointError, match=r"'block\.0\.mlp\.mlp1_bias' has shape \[8, 10\]"):
        load_model(broken)


def test_experts_must_be_packed_uint8(broken):
    def unpack(tensors):
        name = "block.1.mlp.mlp2_weight.scales"
        tensors[name] = tensors[name].float()

    rewrite(broken, unpack)
    with pytest.raises(CheckpointError, match=r"mlp2_weight\.scales' must be uint8"):
        load_model(broken)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.pop("num_experts"), r"missing keys \['num_experts'\]"),
        (lambda c: c.update(num_key_value_heads=3), "multiple of num_key_value_heads"),
        (lambda c: c.update(hidden_size=-64), "hidden_size must be positive"),
        (lambda c: c.update(experts_per_token=9), "exceeds num_experts"),
    ],
)
def test_bad_config(broken, edit, message):
    config = json.loads((broken / "config.json").read_text())
    edit(config)
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=message):
        load_model(broken)


def test_config_that_is_not_json(broken):
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"config\.json"):
        load_model(broken)


def test_config_of_another_model(tiny_hf, tmp_path):
    folder = shutil.copytree(tiny_hf, tmp_path / "hf")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    with pytest.raises(ConfigError, match="not 'gpt_oss'"):
        load_model(folder)


def test_truncated_file(broken):
    file = broken / "model.safetensors"
    data = file.read_bytes()
    file.write_bytes(data[: len(data) - 1000])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: truncated.*re-download"):
        load_model(broken)


def test_missing_shard_of_an_index(tiny_hf, tmp_path):
    folder = shutil.copytree(tiny_hf, tmp_path / "hf")
    index = {"weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=r"missing.*model-00002-of-00002"):
        load_model(folder)
