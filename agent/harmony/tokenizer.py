"""The `o200k_harmony` tokenizer, loaded offline from the vocabulary shipped in this package.

tiktoken normally downloads `o200k_base.tiktoken` on first use; we ship a verified copy so
nothing here ever touches the network. `OSS_AGENT_TOKENIZER_FILE` may point at another copy
(it is hash-checked the same way).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
from pathlib import Path

import tiktoken

VOCAB_FILE = Path(__file__).with_name("o200k_base.tiktoken")
VOCAB_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
VOCAB_ENV = "OSS_AGENT_TOKENIZER_FILE"

# The o200k_base split pattern (tiktoken's `o200k_base` pat_str).
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

# Named special tokens; every other id from 200000 to LAST_SPECIAL_ID is <|reserved_N|>.
NAMED_SPECIAL_TOKENS = {
    "<|startoftext|>": 199998,
    "<|endoftext|>": 199999,
    "<|return|>": 200002,
    "<|constrain|>": 200003,
    "<|channel|>": 200005,
    "<|start|>": 200006,
    "<|end|>": 200007,
    "<|message|>": 200008,
    "<|call|>": 200012,
}
FIRST_SPECIAL_ID = 199998
LAST_SPECIAL_ID = 201088


class TokenizerFileError(RuntimeError):
    """The vocabulary file is missing or is not the o200k_base file."""


def special_tokens() -> dict[str, int]:
    """Every special token of o200k_harmony, named and reserved, by text."""
    named_ids = set(NAMED_SPECIAL_TOKENS.values())
    reserved = {
        f"<|reserved_{i}|>": i
        for i in range(FIRST_SPECIAL_ID, LAST_SPECIAL_ID + 1)
        if i not in named_ids
    }
    return {**NAMED_SPECIAL_TOKENS, **reserved}


def vocab_path() -> Path:
    """Where the vocabulary is read from: the environment override, else the shipped copy."""
    override = os.environ.get(VOCAB_ENV)
    return Path(override) if override else VOCAB_FILE


@functools.cache
def _mergeable_ranks() -> dict[bytes, int]:
    """The BPE ranks from the vocabulary file, after checking its sha256."""
    path = vocab_path()
    if not path.is_file():
        raise TokenizerFileError(
            f"tokenizer vocabulary not found at {path}. Reinstall oss-agent, or set "
            f"{VOCAB_ENV} to a copy of o200k_base.tiktoken (sha256 {VOCAB_SHA256})."
        )
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != VOCAB_SHA256:
        raise TokenizerFileError(
            f"{path} is not the o200k_base vocabulary: sha256 {digest}, expected "
            f"{VOCAB_SHA256}. Point {VOCAB_ENV} at the right file or reinstall oss-agent."
        )
    return {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in data.splitlines() if line)
    }


@functools.cache
def load_o200k_harmony() -> tiktoken.Encoding:
    """The tiktoken encoding, built once per process."""
    return tiktoken.Encoding(
        name="o200k_harmony",
        pat_str=O200K_PATTERN,
        mergeable_ranks=_mergeable_ranks(),
        special_tokens=special_tokens(),
    )


@functools.cache
def token_bytes_table() -> list[bytes]:
    """The bytes of every token id, special tokens as their text: a list lookup per token,
    which keeps per-token streaming decode cheap."""
    table = [b""] * (LAST_SPECIAL_ID + 1)
    for token, rank in _mergeable_ranks().items():
        table[rank] = token
    for text, rank in special_tokens().items():
        table[rank] = text.encode()
    return table
