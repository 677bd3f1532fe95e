from __future__ import annotations

import openai_harmony
import pytest

import agent.harmony as ours


@pytest.fixture(scope="session")
def encoding() -> ours.HarmonyEncoding:
    return ours.load_harmony_encoding(ours.HarmonyEncodingName.HARMONY_GPT_OSS)


@pytest.fixture(scope="session")
def oracle() -> openai_harmony.HarmonyEncoding:
    """openai-harmony, the official implementation, loaded offline (see tests/conftest.py)."""
    return openai_harmony.load_harmony_encoding(openai_harmony.HarmonyEncodingName.HARMONY_GPT_OSS)


def to_oracle(conversation: ours.Conversation) -> openai_harmony.Conversation:
    """The same conversation as openai-harmony objects, through the shared JSON form.

    JSON leaves out None fields and openai-harmony's `from_json` then fills in its Python
    defaults, so fields set to None are copied over explicitly.
    """
    theirs = openai_harmony.Conversation.from_json(conversation.to_json())
    for mine, their_message in zip(conversation.messages, theirs.messages, strict=True):
        for content, their_content in zip(mine.content, their_message.content, strict=True):
            if isinstance(content, ours.SystemContent):
                for field in ("model_identity", "knowledge_cutoff", "channel_config"):
                    if getattr(content, field) is None:
                        setattr(their_content, field, None)
                if content.reasoning_effort is None:
                    their_content.reasoning_effort = None
    return theirs
