"""On the CPU, the weights read whole every token are copied into 2 MiB pages at load, and
the checkpoint file's pages under them leave the process."""

from __future__ import annotations

import pytest
import torch

from runtime import huge_pages, load_model
from runtime.testing import write_random_checkpoint

needs_huge_pages = pytest.mark.skipif(
    not huge_pages.enabled(), reason="needs Linux transparent huge pages (off or missing here)"
)


@pytest.fixture(scope="module", params=["original", "hf"])
def mini(request, tmp_path_factory):
    """gpt-oss's vocabulary on tiny layers: a 25 MB unembedding, the rest far under 2 MiB."""
    folder = tmp_path_factory.mktemp(f"mini-{request.param}")
    return write_random_checkpoint(folder, "mini", seed=3, layout=request.param)


def smaps() -> list[tuple[int, int, str, dict[str, str]]]:
    """This process's mappings: start, end, path (or ''), and their fields."""
    mappings = []
    with open("/proc/self/smaps") as lines:
        for line in lines:
            head, *rest = line.split()
            if "-" in head and not head.endswith(":"):
                start, end = (int(part, 16) for part in head.split("-"))
                mappings.append((start, end, rest[4] if len(rest) > 4 else "", {}))
            else:
                mappings[-1][3][head.rstrip(":")] = rest[0] if rest else ""
    return mappings


def resident_kib_of_files(folder) -> int:
    return sum(
        int(fields["Rss"])
        for _, _, path, fields in smaps()
        if path.startswith(str(folder)) and path.endswith(".safetensors")
    )


@needs_huge_pages
def test_streamed_weights_move_into_huge_pages_and_their_file_pages_are_given_back(mini):
    model = load_model(mini)
    unembedding = model.transformer.unembedding
    assert unembedding.data_ptr() % huge_pages.SIZE == 0
    (fields,) = [f for start, end, _, f in smaps() if start <= unembedding.data_ptr() < end]
    assert fields["THPeligible"] == "1"
    # Copying read all 25 MB of the unembedding from the file; none of it stays mapped.
    assert resident_kib_of_files(mini) < 2048
    # The small tensors are still views of the file, and still read correctly.
    assert model.logits([1, 200_000, 5]).isfinite().all()


def test_huge_pages_leave_every_logit_unchanged(mini):
    tokens = [17, 200_005, 4_242, 99_999, 3]
    moved = load_model(mini).logits(tokens)
    viewed = load_model(mini, huge_pages=False).logits(tokens)
    assert torch.equal(moved, viewed)


def test_a_checkpoint_that_barely_fits_in_memory_stays_as_views(mini, monkeypatch, caplog):
    """Copies cannot be dropped under memory pressure as the file's pages can: with 1 MiB
    said to be available, the unembedding stays in the file's mapping."""
    monkeypatch.setattr(huge_pages, "available_memory", lambda: 1 << 20)
    with caplog.at_level("INFO", logger="runtime.load"):
        model = load_model(mini)
    address = model.transformer.unembedding.data_ptr()
    (path,) = [path for start, end, path, _ in smaps() if start <= address < end]
    assert path.startswith(str(mini)) and path.endswith(".safetensors")
    assert "weights stay views" in caplog.text
