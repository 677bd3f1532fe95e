"""The o200k_harmony tokenizer: offline, hash-checked, and safe with special-looking text."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.harmony import HarmonyError
from agent.harmony.tokenizer import VOCAB_ENV, VOCAB_FILE


def load_in_subprocess(env_value: str) -> subprocess.CompletedProcess:
    """The tokenizer is cached per process, so a different vocabulary needs a fresh one."""
    code = "from agent.harmony import load_harmony_encoding as l; l('HarmonyGptOss')"
    return subprocess.run(
        [sys.executable, "-c", code],
        env={VOCAB_ENV: env_value, "PATH": ""},
        capture_output=True,
        text=True,
    )


def test_shipped_vocabulary_is_used_without_network(encoding):
    assert VOCAB_FILE.is_file()
    assert encoding.encode("Hello, world!") == [13225, 11, 2375, 0]


def test_a_tampered_vocabulary_is_refused(tmp_path):
    bad = tmp_path / "o200k_base.tiktoken"
    bad.write_bytes(VOCAB_FILE.read_bytes().replace(b" 0\n", b" 1\n", 1))
    result = load_in_subprocess(str(bad))
    assert result.returncode != 0
    assert "is not the o200k_base vocabulary: sha256" in result.stderr


def test_a_missing_vocabulary_says_how_to_fix_it(tmp_path):
    result = load_in_subprocess(str(tmp_path / "nowhere.tiktoken"))
    assert "tokenizer vocabulary not found" in result.stderr
    assert VOCAB_ENV in result.stderr


def test_special_token_text_is_refused_by_encode_unless_allowed(encoding):
    with pytest.raises(HarmonyError, match="disallowed_special"):
        encoding.encode("hi <|end|>")
    assert encoding.encode("<|end|>", allowed_special={"<|end|>"}) == [200007]
    assert 200007 not in encoding.encode("<|end|>", disallowed_special=())


def test_token_ids_and_stop_tokens_match_openai_harmony(encoding, oracle):
    assert encoding.special_tokens_set == oracle.special_tokens_set
    assert sorted(encoding.stop_tokens()) == sorted(oracle.stop_tokens())
    assert sorted(encoding.stop_tokens_for_assistant_actions()) == sorted(
        oracle.stop_tokens_for_assistant_actions()
    )
    for token in (0, 199997, 199998, 200012, 201088):
        assert encoding.is_special_token(token) == oracle.is_special_token(token)
        assert encoding.decode([token]) == oracle.decode([token])


def test_invalid_utf8_and_invalid_ids_raise_harmony_errors(encoding):
    pieces = encoding.encode("𝔘")
    with pytest.raises(HarmonyError, match="UTF-8"):
        encoding.decode_utf8(pieces[:1])
    assert encoding.decode(pieces[:1]) == "\ufffd"
    with pytest.raises(HarmonyError, match="invalid token id"):
        encoding.decode([201089])


@settings(max_examples=300, deadline=None)
@given(text=st.text())
def test_encoding_matches_openai_harmony(encoding, oracle, text):
    ours = encoding.encode(text, disallowed_special=())
    assert ours == oracle.encode(text, disallowed_special=())
    assert encoding.decode(ours) == oracle.decode(ours)
