"""gpt-oss-nano: a tiny trained gpt-oss model that ships with the package."""

from pathlib import Path

# The held-out tasks (a seed not used in training), scored by the evals benchmark `nano`.
HELDOUT = Path(__file__).parent / "heldout.jsonl"
