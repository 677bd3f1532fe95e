"""oss-agent: run gpt-oss models as tool-using agents."""

__version__ = "0.1.0"
