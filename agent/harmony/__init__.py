"""The harmony format gpt-oss speaks: a drop-in for openai-harmony's Python API.

    from agent.harmony import load_harmony_encoding, HarmonyEncodingName, Conversation, ...

Rendering is token-identical to openai-harmony; parsing also recovers from the malformed
output real deployments see (`strict=False`).
"""

from agent.harmony.chat import (
    Author,
    ChannelConfig,
    Content,
    Conversation,
    DeveloperContent,
    Message,
    ReasoningEffort,
    RenderConversationConfig,
    RenderOptions,
    Role,
    SystemContent,
    TextContent,
    ToolDescription,
    ToolNamespaceConfig,
)
from agent.harmony.encoding import HarmonyEncoding, HarmonyEncodingName, load_harmony_encoding
from agent.harmony.errors import HarmonyError
from agent.harmony.parse import Recovery, StreamableParser, StreamState

__all__ = [
    "Author",
    "ChannelConfig",
    "Content",
    "Conversation",
    "DeveloperContent",
    "HarmonyEncoding",
    "HarmonyEncodingName",
    "HarmonyError",
    "Message",
    "ReasoningEffort",
    "Recovery",
    "RenderConversationConfig",
    "RenderOptions",
    "Role",
    "StreamState",
    "StreamableParser",
    "SystemContent",
    "TextContent",
    "ToolDescription",
    "ToolNamespaceConfig",
    "load_harmony_encoding",
]
