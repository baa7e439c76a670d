"""Peak memory of `saliency` over N faces: does it grow with the split?

    python benchmarks/analysis_memory.py --run results/ferplus-fast/s0 --data-root ../shared/data/ferplus \\
        --faces 2048,8192,24576 [--split train] [--out results/benchmarks/analysis-memory]

For each N, a fresh process loads the first N faces of the split and runs Grad-CAM over them (one
thread, no sanity check, no figures) and reports its peak resident memory (ru_maxrss). With faces
streamed in chunks (`facexai.explain.analysis.CHUNK`) the peak should barely move with N; before,
a subject held every input, mask and map at once.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from facexai.io.files import write_csv, write_json
from facexai.provenance import git_commit, now, provenance


def one(run: str, data_root: str | None, split: str, n: int) -> dict:
    """Measure in this process (called in a fresh one per N)."""
    from facexai.explain.analysis import ExplainConfig, SubjectConfig, load_subject, saliency

    t = time.perf_counter()
    subject = load_subject(run, SubjectConfig(split=split, limit=n, device="cpu", threads=1), data_root=data_root)
    saliency(subject, ExplainConfig(methods=("gradcam",), sanity_n=0, galleries=False, n_boot=100, progress=False))
    return {"faces": len(subject.labels), "seconds": round(time.perf_counter() - t, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a finished run folder")
    p.add_argument("--data-root", default=None)
    p.add_argument("--split", default="train", help="train has the most faces")
    p.add_argument("--faces", default="2048,8192,24576", help="comma-separated N")
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # internal: measure one N here
    p.add_argument("--out", type=Path, default=None, help="folder for memory.csv and provenance.json")
    args = p.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.run, args.data_root, args.split, args.one)))
        return
    started, commit, rows = now(), git_commit(), []
    for n in (int(f) for f in args.faces.split(",")):
        cmd = [sys.executable, __file__, "--run", args.run, "--split", args.split, "--one", str(n)]
        cmd += ["--data-root", args.data_root] if args.data_root else []
        row = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        print(f"{row['faces']:6d} faces  {row['seconds']:7.1f} s  peak {row['peak_rss_mb']:6d} MB", flush=True)
        rows.append(row)
    if args.out is not None:
        write_csv(args.out / "memory.csv", rows)
        write_json(args.out / "provenance.json", provenance(vars(args) | {"out": str(args.out)}, torch.device("cpu"),
                                                            started, commit))  # fmt: skip


if __name__ == "__main__":
    main()
