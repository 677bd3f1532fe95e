"""Checkpoint folders on disk: layout detection, lazy (mmap) tensor access, validation.

Tensors are views into a private memory map of each safetensors file, so nothing is read
until it is used and the packed experts never need a second copy in RAM: the loader gives
back (`release`) the pages of views it has copied (into huge pages, or fused q/k/v).
"""

from __future__ import annotations

import json
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from runtime import huge_pages
from runtime.config import ConfigError, ModelConfig

DTYPES = {
    "BF16": torch.bfloat16,
    "F16": torch.float16,
    "F32": torch.float32,
    "U8": torch.uint8,
    "I8": torch.int8,
    "I32": torch.int32,
    "I64": torch.int64,
}


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be loaded; the message names the file or tensor."""


@dataclass(frozen=True)
class TensorInfo:
    file: Path
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute byte offset in the file
    end: int


def read_header(file: Path) -> dict[str, TensorInfo]:
    """Parse a safetensors header and check every tensor lies inside the file."""
    size = file.stat().st_size
    with open(file, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"{file}: truncated (no safetensors header); re-download it")
        (length,) = struct.unpack("<Q", prefix)
        if 8 + length > size:
            raise CheckpointError(f"{file}: truncated inside its header; re-download it")
        try:
            header = json.loads(handle.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise CheckpointError(f"{file}: not a safetensors file ({error})") from error
    base = 8 + length
    infos = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = (base + offset for offset in entry["data_offsets"])
        if end > size:
            raise CheckpointError(
                f"{file}: truncated: tensor '{name}' ends at byte {end} but the file has "
                f"{size} bytes; re-download or regenerate the file"
            )
        infos[name] = TensorInfo(file, entry["dtype"], tuple(entry["shape"]), start, end)
    return infos


def detect_layout(path: Path) -> str:
    """'hf' when config.json names transformers' model_type, else 'original'."""
    raw = json.loads((path / "config.json").read_text())
    return "hf" if isinstance(raw, dict) and "model_type" in raw else "original"


def _find_root(path: Path) -> Path:
    """Accept the download root of openai/gpt-oss-* too: its weights live in original/."""
    if not (path / "config.json").exists() and (path / "original" / "config.json").exists():
        return path / "original"
    return path


class Checkpoint:
    """The tensors of one checkpoint folder, by name, read lazily."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if not path.is_dir():
            raise CheckpointError(f"{path}: no such checkpoint folder")
        self.path = _find_root(path)
        if not (self.path / "config.json").exists():
            raise CheckpointError(f"{self.path}: no config.json; is this a gpt-oss checkpoint?")
        try:
            self.layout = detect_layout(self.path)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{self.path / 'config.json'}: invalid JSON ({error})") from error
        self.config = ModelConfig.from_file(self.path / "config.json")
        self.files = self._list_files()
        self.infos: dict[str, TensorInfo] = {}
        for file in self.files:
            self.infos.update(read_header(file))
        self._maps: dict[Path, mmap.mmap] = {}

    def _list_files(self) -> list[Path]:
        index = self.path / "model.safetensors.index.json"
        if index.exists():
            weight_map = json.loads(index.read_text())["weight_map"]
            files = sorted({self.path / name for name in weight_map.values()})
            missing = [file.name for file in files if not file.exists()]
            if missing:
                raise CheckpointError(
                    f"{index}: lists shards that are missing: {missing}; download them"
                )
            return files
        files = sorted(self.path.glob("*.safetensors"))
        if not files:
            raise CheckpointError(f"{self.path}: no *.safetensors files")
        return files

    def _map(self, file: Path) -> mmap.mmap:
        if file not in self._maps:
            with open(file, "rb") as handle:
                # Copy-on-write: a writable buffer for torch.frombuffer, backed by the file.
                self._maps[file] = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
        return self._maps[file]

    def get(self, name: str, shape: tuple[int, ...] | None = None) -> torch.Tensor:
        """A zero-copy view of tensor `name`, checked against `shape` when given."""
        info = self.infos.get(name)
        if info is None:
            raise CheckpointError(
                f"{self.path}: tensor '{name}' is missing ({self.layout} layout, "
                f"{len(self.files)} file(s)); the checkpoint is incomplete or of another "
                "model: re-download or regenerate it"
            )
        if shape is not None and info.shape != tuple(shape):
            raise CheckpointError(
                f"{info.file}: tensor '{name}' has shape {list(info.shape)}, expected "
                f"{list(shape)} from config.json; config and weights disagree"
            )
        if info.dtype not in DTYPES:
            raise CheckpointError(
                f"{info.file}: tensor '{name}' has unsupported dtype {info.dtype}"
            )
        dtype = DTYPES[info.dtype]
        count = (info.end - info.start) // dtype.itemsize
        if count != _numel(info.shape):
            raise CheckpointError(
                f"{info.file}: tensor '{name}' byte range does not match its shape"
            )
        if count == 0:
            return torch.empty(info.shape, dtype=dtype)
        flat = torch.frombuffer(self._map(info.file), dtype=dtype, count=count, offset=info.start)
        return flat.view(info.shape)

    def release(self, view: torch.Tensor) -> None:
        """Drop the file pages under `view` (from `get`) from this process, once its data has
        been copied: they leave its resident memory and stay in the page cache (reading the
        view again faults them back in). Other tensors are left alone."""
        start = view.data_ptr()
        for region in self._maps.values():
            offset = start - huge_pages.address(region)
            if 0 <= offset < len(region):
                first = offset // mmap.PAGESIZE * mmap.PAGESIZE
                end = min(len(region), offset + view.nbytes)
                region.madvise(mmap.MADV_DONTNEED, first, end - first)
                return


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count
