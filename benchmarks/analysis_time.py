"""The full-split analysis against its compute bound, measured side by side in one run.

    python benchmarks/analysis_time.py --run results/ferplus-fast/s0 --data-root ../shared/data/ferplus \\
        --threads 2 --bf16 [--ig-steps 32] [--out results/benchmarks/analysis-time]
    python benchmarks/analysis_time.py --run RUN --data-root DATA --device cuda --bf16   # on a GPU: 512 rows

Times what `facexai saliency --methods gradcam,ig --sanity-n 0 --no-galleries` and `facexai occlude
--fill blur` compute over a whole split (loading the split and its regions, Grad-CAM, integrated
gradients, 8-region blur occlusion, the per-emotion tables with their bootstrap intervals; no figures,
no files), then the bare network passes those methods need, on ready tensors of the analysis' batch
shape (--batch rows, by default the analysis commands'): Grad-CAM one forward and backward per face, IG
--ig-steps of them, occlusion 9 forwards. The bound is the time of those passes alone; `bound / measured`
is the fraction of the machine's limit reached (the speed issue's goal: the measured time within 1.25x of
the bound, i.e. a fraction >= 0.8, and the whole FER+ test split in <= 5 minutes on a 2-core CPU with
hardware bf16).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from pathlib import Path

import torch

from facexai.explain.analysis import ExplainConfig, SubjectConfig, load_subject, occlusion, rows_per_pass, saliency
from facexai.facs import FaceRegion
from facexai.io.files import write_csv, write_json
from facexai.provenance import git_commit, now, provenance


def bare_rates(model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, bf16: bool, repeats: int) -> tuple[float, ...]:
    """(forwards/s, forward+backward/s) on ready (rows, C, S, S) tensors: medians of `repeats` timings."""
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def sync() -> None:  # time work done, not work queued
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)

    t = t.to(x.device)
    for p in model.parameters():
        p.requires_grad_(False)

    def forward() -> None:
        with torch.no_grad(), autocast:
            model(x)

    def forward_backward() -> None:  # as Grad-CAM and IG: the gradient of the target's score w.r.t. the input
        z = x.clone().requires_grad_(True)
        with autocast:
            out = model(z).float()
        out.gather(1, t[:, None]).sum().backward()

    def rate(step, n: int = 20) -> float:
        step()  # warm-up
        sync()
        start = time.perf_counter()
        for _ in range(n):
            step()
        sync()
        return n * len(x) / (time.perf_counter() - start)

    rates = (statistics.median(rate(forward) for _ in range(repeats)),
             statistics.median(rate(forward_backward) for _ in range(repeats)))  # fmt: skip
    for p in model.parameters():
        p.requires_grad_(True)
    return rates


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="a finished run folder")
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (as the analysis commands' --device)")
    p.add_argument("--batch", type=int, default=None,
                   help="rows per network pass in every method (default: as the analysis commands, 16 on a CPU, "
                        "512 on a GPU)")
    p.add_argument("--bf16", action="store_true", help="attribution passes under bf16 autocast (as --bf16)")
    p.add_argument("--ig-steps", type=int, default=32)
    p.add_argument("--limit", type=int, default=None, help="first N faces of the split (default: all)")
    p.add_argument("--repeats", type=int, default=5, help="timings of the bare passes; the median is kept")
    p.add_argument("--out", type=Path, default=None, help="folder for analysis_time.csv and provenance.json")
    args = p.parse_args()
    started, commit = now(), git_commit()
    t0 = time.perf_counter()
    subject = load_subject(args.run, SubjectConfig(limit=args.limit, device=args.device, threads=args.threads),
                           data_root=str(args.data_root) if args.data_root else None)  # fmt: skip
    times = {"load": time.perf_counter() - t0}
    args.batch = args.batch or rows_per_pass(subject.run.engine.device)
    cfg = ExplainConfig(methods=("gradcam", "ig"), ig_steps=args.ig_steps, sanity_n=0, galleries=False,
                        fills=("blur",), bf16=args.bf16, batch_size=args.batch, progress=False)  # fmt: skip
    t = time.perf_counter()
    saliency(subject, cfg)
    times["saliency"] = time.perf_counter() - t
    t = time.perf_counter()
    occlusion(subject, cfg)
    times["occlusion"] = time.perf_counter() - t
    n = len(subject.labels)
    first = subject.select(torch.arange(min(args.batch, n)))
    fwd, fwd_bwd = bare_rates(first.run.model.eval(), first.inputs, first.preds, args.bf16, args.repeats)
    bound = {"load": 0.0, "saliency": n * (1 + args.ig_steps) / fwd_bwd, "occlusion": n * (len(FaceRegion) + 1) / fwd}
    rows = [{"stage": k, "faces": n, "seconds": round(v, 2), "bound_seconds": round(bound[k], 2),
             "fraction_of_bound": round(bound[k] / v, 3)} for k, v in times.items()]  # fmt: skip
    total, total_bound = sum(times.values()), sum(bound.values())
    rows.append({"stage": "total", "faces": n, "seconds": round(total, 2), "bound_seconds": round(total_bound, 2),
                 "fraction_of_bound": round(total_bound / total, 3)})  # fmt: skip
    print(f"{n} faces, {torch.get_num_threads()} threads, bf16 {args.bf16}, IG {args.ig_steps} steps; bare passes "
          f"on ready ({args.batch}, ...) tensors: forward {fwd:.0f}/s, forward + backward {fwd_bwd:.0f}/s")
    for r in rows:
        print(f"{r['stage']:10s} {r['seconds']:8.1f} s   bound {r['bound_seconds']:8.1f} s   "
              f"fraction of bound {r['fraction_of_bound']:.2f}")  # fmt: skip
    if args.out is not None:
        write_csv(args.out / "analysis_time.csv", rows)
        config = vars(args) | {"out": str(args.out), "run": str(args.run), "data_root": str(args.data_root),
                               "threads": torch.get_num_threads(), "rows": args.batch,
                               "forward_per_s": fwd, "forward_backward_per_s": fwd_bwd}  # fmt: skip
        write_json(args.out / "provenance.json", provenance(config, subject.run.engine.device, started, commit))


if __name__ == "__main__":
    main()
