"""Pack the FER+ folders into one small lossless file, and unpack it into the same layout elsewhere.

    python benchmarks/carry_ferplus.py pack ../shared/data/ferplus .gpu/ferplus.tar.xz
    python benchmarks/carry_ferplus.py unpack .gpu/ferplus.tar.xz /tmp/ferplus

Why: a lent GPU machine sees only what travels with the working tree (64 MiB at most), and the FER+
PNGs are 87 MB. Each 48x48 grayscale face is stored as its LOCO-I (median edge) prediction residuals,
xz-compressed (53.8 MB for all 35,710 faces, against 63 MB for xz on the raw pixels); `unpack` rebuilds
every PNG pixel for pixel, with each folder's `label.csv` and `fer2013new.csv`, so `facexai train
ferplus --data-root DEST` reads the same faces and votes as from the original folders.
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

FOLDERS = ("FER2013Train", "FER2013Valid", "FER2013Test")
SIDE = 48


def residuals(x: np.ndarray) -> np.ndarray:
    """(N, S, S) uint8 -> residuals of the median edge predictor (mod 256), same shape."""
    x = x.astype(np.int16)
    a, b, c = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    a[:, :, 1:], b[:, 1:, :], c[:, 1:, 1:] = x[:, :, :-1], x[:, :-1, :], x[:, :-1, :-1]
    return ((x - _predict(a, b, c)) % 256).astype(np.uint8)


def _predict(a, b, c):
    hi, lo = np.maximum(a, b), np.minimum(a, b)
    return np.where(c >= hi, lo, np.where(c <= lo, hi, a + b - c))


def restore(r: np.ndarray) -> np.ndarray:
    """Inverse of `residuals`: pixels in raster order, every image at once."""
    n, s, _ = r.shape
    x = np.zeros((n, s, s), np.int16)
    zero = np.zeros(n, np.int16)
    for i in range(s):
        for j in range(s):
            a = x[:, i, j - 1] if j else zero
            b = x[:, i - 1, j] if i else zero
            c = x[:, i - 1, j - 1] if i and j else zero
            x[:, i, j] = (_predict(a, b, c) + r[:, i, j]) % 256
    return x.astype(np.uint8)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


class PackError(ValueError):
    """The source is not the FER+ folder layout."""


def _check(src: Path) -> None:
    for need in [*(src / f / "label.csv" for f in FOLDERS), src / "fer2013new.csv"]:
        if not need.is_file():
            raise PackError(f"{need}: not found; expected the FER+ layout ({', '.join(FOLDERS)} with label.csv, "
                            "and fer2013new.csv)")  # fmt: skip
    for folder in FOLDERS:
        if not any((src / folder).glob("*.png")):
            raise PackError(f"{src / folder}: no .png faces; expected FER+'s {SIDE}x{SIDE} PNGs")


def pack(src: Path, dest: Path) -> None:
    _check(src)
    folders = {}
    for folder in FOLDERS:  # every face read and checked before the archive is opened
        names = sorted(p.name for p in (src / folder).glob("*.png"))
        faces = [np.asarray(Image.open(src / folder / n).convert("L")) for n in names]
        for n, f in zip(names, faces, strict=True):
            if f.shape != (SIDE, SIDE):
                raise PackError(f"{src / folder / n}: {f.shape[1]}x{f.shape[0]} pixels; expected {SIDE}x{SIDE}")
        folders[folder] = names, np.stack(faces)
    partial = dest.with_name(dest.name + ".partial")  # renamed when complete: no half-written pack
    with tarfile.open(partial, "w:xz", preset=9) as tar:
        for folder, (names, faces) in folders.items():
            _add(tar, f"{folder}/names.txt", "\n".join(names).encode())
            _add(tar, f"{folder}/residuals.u8", residuals(faces).tobytes())
            _add(tar, f"{folder}/label.csv", (src / folder / "label.csv").read_bytes())
        _add(tar, "fer2013new.csv", (src / "fer2013new.csv").read_bytes())
    partial.replace(dest)
    print(f"{dest}: {dest.stat().st_size / 1e6:.1f} MB")


def _write(args: tuple[Path, list[str], np.ndarray]) -> None:
    folder, names, faces = args
    for n, f in zip(names, faces, strict=True):
        Image.fromarray(f).save(folder / n)  # (S, S) uint8: grayscale


def unpack(src: Path, dest: Path, workers: int = 8) -> None:
    with tarfile.open(src, "r:xz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    need = ["fer2013new.csv", *(f"{f}/{m}" for f in FOLDERS for m in ("names.txt", "residuals.u8", "label.csv"))]
    missing = [m for m in need if m not in members]
    if missing:
        raise PackError(f"{src}: not a FER+ pack (no {missing[0]}); expected what `pack` writes")
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "fer2013new.csv").write_bytes(members["fer2013new.csv"])
    jobs = []
    for folder in FOLDERS:
        (dest / folder).mkdir(exist_ok=True)
        (dest / folder / "label.csv").write_bytes(members[f"{folder}/label.csv"])
        names = members[f"{folder}/names.txt"].decode().split("\n")
        r = np.frombuffer(members[f"{folder}/residuals.u8"], np.uint8).reshape(len(names), SIDE, SIDE)
        faces = restore(r)
        step = -(-len(names) // workers)
        jobs += [(dest / folder, names[i : i + step], faces[i : i + step]) for i in range(0, len(names), step)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write, jobs))
    print(f"{dest}: {sum(len(j[1]) for j in jobs)} faces")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("verb", choices=("pack", "unpack"))
    p.add_argument("src", type=Path)
    p.add_argument("dest", type=Path)
    args = p.parse_args()
    try:
        (pack if args.verb == "pack" else unpack)(args.src, args.dest)
    except (PackError, FileNotFoundError, tarfile.TarError) as e:
        print(f"carry_ferplus: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
