"""A RAF-DB "basic" tree filled with synthetic faces: the real layout and label file, not the real pictures.

RAF-DB's images are licence-restricted, but its label file is enough to fix the layout, the image names,
the split sizes and the class balance. `write_rafdb_standin` renders one synthetic face per label line,
showing that line's emotion, so `facexai train rafdb --data-root <tree>` can run end to end without the
real data. The tree carries a STANDIN.md so nobody mistakes it for RAF-DB.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from torchvision.io import encode_jpeg, write_file

from facexai.data import rafdb, synthetic
from facexai.errors import ConfigError
from facexai.io.progress import progress_bar

BLOCK = 512  # faces per parameter draw: face i depends only on the seed and i, never on `limit`
QUALITY = 95
STANDIN_NOTE = "STANDIN.md"


def _check(out: Path, size: int, seed: int, limit: int | None) -> None:
    """Refuse bad options and an existing non-empty `out` before anything is written."""
    if not isinstance(size, int) or size < 16:
        raise ConfigError(f"stand-in faces need size >= 16 (RAF-DB's loader expects 100), got {size!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a positive integer or None, got {limit!r}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"stand-in output already exists and is not empty: {out}")


def _kept(names: list[str], limit: int | None) -> list[int]:
    """Indices of the label lines a `limit` keeps: train and test lines in the file's proportion (at least one
    test line when the file has any), the first of each, in file order; all lines without a limit."""
    if limit is None or limit >= len(names):
        return list(range(len(names)))
    test = [i for i, n in enumerate(names) if n.startswith("test")]
    train = [i for i, n in enumerate(names) if not n.startswith("test")]
    k_test = min(len(test), max(1 if test and limit > 1 else 0, round(limit * len(test) / len(names))))
    return sorted(train[: limit - k_test] + test[:k_test])


def _label_text(label_file: Path, kept: list[int]) -> bytes:
    """The label file's entry lines that are kept (blank lines skipped, as the parser does)."""
    lines = [line for line in label_file.read_bytes().splitlines(keepends=True) if line.strip()]
    return b"".join(lines[i] if lines[i].endswith(b"\n") else lines[i] + b"\n" for i in kept)


def _block_seed(seed: int, block: int) -> int:
    """Seed of faces [block * BLOCK, (block + 1) * BLOCK): independent streams per (seed, block)."""
    return int(np.random.SeedSequence([seed, 0x2AFD8, block]).generate_state(1, np.uint64)[0])


def _note(label_file: Path, n: int, size: int, seed: int) -> str:
    return (
        "# Stand-in for RAF-DB basic: synthetic faces, NOT real data\n\n"
        "The images here are procedural faces from `facexai.data.synthetic`, one per line of the label file,\n"
        "each showing that line's emotion. Only the layout, names and labels come from RAF-DB.\n\n"
        f"- labels: {label_file} ({n} lines)\n"
        f"- generator version: {synthetic.GENERATOR_VERSION}\n"
        f"- seed: {seed}\n"
        f"- size: {size}x{size} RGB, JPEG quality {QUALITY}\n"
    )


def write_rafdb_standin(
    label_file: Path | str,
    out: Path | str,
    size: int = 100,
    seed: int = 0,
    limit: int | None = None,
    progress: bool = False,
) -> Path:
    """Write a RAF-DB basic tree at `out` whose images are synthetic faces with the label file's emotions.

    out/basic/EmoLabel/list_patition_label.txt is the label file (with `limit`, that many of its lines, train
    and test in the file's proportion) and
    out/basic/Image/aligned/<stem>_aligned.jpg one face per line, deterministic in `seed`. All or nothing:
    built in a hidden temp folder beside `out` and renamed into place; `out` must be absent or empty.
    Returns `out` (the folder holding basic/, a valid RAF-DB data root).
    """
    label_file, out = Path(label_file), Path(os.path.abspath(Path(out).expanduser()))
    _check(out, size, seed, limit)
    names, labels = rafdb.read_partition(label_file)  # (N,) canonical SEVEN indices; raises naming file and line
    kept = _kept(names, limit)
    text = label_file.read_bytes() if limit is None else _label_text(label_file, kept)
    labels = labels.numpy()  # every line's label: face i is drawn from its line's block, whatever is kept
    n = len(kept)
    # render sub-batches sized like synthetic.generate's: bounds the float canvas to about 32 MB
    batch = max(16, 2**21 // (size * size * 3))

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    bar = progress_bar(progress)
    try:
        tmp.chmod(out.parent.stat().st_mode & 0o777)  # mkdtemp's 0o700 would outlive the rename
        base = tmp / "basic"
        aligned = base / rafdb.ALIGNED
        aligned.mkdir(parents=True)
        (base / rafdb.LABEL_FILE).parent.mkdir(parents=True)
        (base / rafdb.LABEL_FILE).write_bytes(text)
        with bar:
            task = bar.add_task("stand-in faces", total=n)
            for b in sorted({i // BLOCK for i in kept}):
                start = b * BLOCK
                # always draw a full block of the file's lines, so `limit` changes no face
                padded = np.zeros(BLOCK, np.int64)  # (BLOCK,) SEVEN indices
                block = labels[start : start + BLOCK]
                padded[: len(block)] = block
                here = [i for i in kept if i // BLOCK == b]
                params = synthetic.sample_params(padded, _block_seed(seed, b))[np.array(here) - start]
                for s in range(0, len(here), batch):
                    images = synthetic.render(params[s : s + batch], size, 3)  # (B, 3, size, size) uint8
                    jpegs = encode_jpeg(list(torch.from_numpy(images)), quality=QUALITY)
                    for i, data in zip(here[s : s + len(images)], jpegs, strict=True):
                        write_file(str(aligned / rafdb.aligned_name(names[i])), data)
                    bar.update(task, advance=len(images))
        (tmp / STANDIN_NOTE).write_text(_note(label_file.resolve(), n, size, seed))
        os.replace(tmp, out)  # replaces an empty `out`; fails (and cleans up) if it filled up meanwhile
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


__all__ = ["write_rafdb_standin"]
