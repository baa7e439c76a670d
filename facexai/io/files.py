"""Every file facexai writes is written whole or not at all: to a temporary file beside it, then renamed.

One writer (`atomic_write`) serves text (CSV, JSON, markdown), tensors (`torch.save`) and figures;
`staged` does the same for several files that belong together.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from facexai.errors import MalformedDataError


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call write(tmp) on a temporary file in `path`'s folder, then rename it to `path`; on any error the
    temporary file is removed and `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f"{path.suffix}.tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make results unreadable to others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, newline=""))


def atomic_save(obj: Any, path: str | Path) -> Path:
    """torch.save, whole or not at all."""
    import torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_torch(path: str | Path) -> Any:
    """torch.load (tensors and plain data only); a truncated or foreign file is one MalformedDataError."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for a damaged file
        reason = str(e).split(". ")[0].splitlines()[0][:100] if str(e) else type(e).__name__
        raise MalformedDataError(f"{path}: not a readable torch file (truncated or damaged? {reason})") from None


def write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def write_csv(path: str | Path, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> Path:
    """One row per dict, columns in first-seen order (or as given); floats to 6 significant digits."""
    columns = list(columns or dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return atomic_write_text(path, buf.getvalue())


def read_csv(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@contextmanager
def staged(folder: str | Path, remove: Sequence[str] = ()) -> Iterator[Path]:
    """A staging folder for several files that belong together.

    Write everything into the yielded folder; when the block ends without an error its files replace
    those of the same names in `folder` (and the files named in `remove`, left from an earlier write,
    are deleted), so readers never see this write's tables beside the last one's figures. On an error
    the staging folder is removed and `folder` is left as it was.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=folder, prefix=".staged-"))
    try:
        yield stage
        for name in remove:
            (folder / name).unlink(missing_ok=True)
        for file in sorted(stage.iterdir()):
            os.chmod(file, 0o644)
            os.replace(file, folder / file.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
