"""Exact region Shapley values against the machine's own limit, and bf16 against fp32 on the same faces.

    python benchmarks/shapley_throughput.py --run results/ferplus-fast/s0 --data-root ../shared/data/ferplus \\
        --threads 2 --n 32 --agree 140 --out results/benchmarks/shapley-throughput

On n stratified test faces of the run's data set, side by side in one process:
  bare:     forward passes/s of the run's model on ready tensors of the Shapley path's batch shape
            (the compute bound: the estimator needs 2^8 = 256 forwards per face and nothing else);
  shapley:  (face, coalition) rows/s of `coalition_values` (mask, fill and forward per batch);
  fraction: shapley / bare (goal >= 0.8), and the minutes the whole test split (--split-faces, FER+:
            3,572) would take at that rate.
Each for fp32 and, where the CPU has hardware bf16 (or --bf16 forces it), bf16 autocast; medians of
--repeats timings. Then the agreement of bf16 with fp32 on --agree faces (stratified): the largest and
median absolute difference of the Shapley values, how often the top region is the same, and the
median Spearman correlation of each face's region ranking.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from facexai.explain import scores
from facexai.explain.analysis import SubjectConfig, load_subject
from facexai.explain.scorecard import stratified
from facexai.explain.shapley import coalition_values, shapley_weights
from facexai.facs import FaceRegion
from facexai.io.files import write_csv, write_json
from facexai.provenance import git_commit, now, provenance
from facexai.runs import bf16_supported

COALITIONS = 2 ** len(FaceRegion)


def timed(fn, repeats: int) -> float:
    """Median seconds of `repeats` calls of fn() after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a finished run folder")
    p.add_argument("--data-root", default=None)
    p.add_argument("--n", type=int, default=32, help="faces per timing (each is 256 forward rows)")
    p.add_argument("--agree", type=int, default=140, help="faces for the bf16 vs fp32 agreement (0: skip)")
    p.add_argument("--limit", type=int, default=700, help="faces are drawn from the first N of the test split")
    p.add_argument("--batch", type=int, default=64, help="rows per forward pass (the study's batch size)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--bf16", action="store_true", help="time bf16 even where the CPU lacks hardware bf16")
    p.add_argument("--split-faces", type=int, default=3572, help="faces in the whole split (FER+ test: 3,572)")
    p.add_argument("--out", type=Path, default=None, help="folder for shapley.csv, agreement.csv, provenance.json")
    a = p.parse_args()
    started, commit = now(), git_commit()
    if a.threads:
        torch.set_num_threads(a.threads)
    subject = load_subject(a.run, SubjectConfig(limit=a.limit, device="cpu"), data_root=a.data_root)
    model, pre = subject.run.model.eval(), subject.run.pre
    device = subject.run.engine.device
    masks = subject.masks(tuple(FaceRegion))  # (N, R, S, S)
    pick = stratified(subject.preds, max(a.n, a.agree))
    timing = pick[torch.randperm(len(pick), generator=torch.Generator().manual_seed(0))[: a.n]]
    x, t, m = subject.inputs[timing], subject.preds[timing], masks[timing]
    ready = x[torch.arange(a.batch) % len(x)]  # (B, C, S, S): indexed as the Shapley path indexes its rows
    precisions = ["fp32"] + (["bf16"] if a.bf16 or bf16_supported(device) else [])
    rows = []
    print(f"{a.run}: {len(timing)} faces x {COALITIONS} coalitions, batch {a.batch}, threads "
          f"{torch.get_num_threads()}, {x.shape[-1]}x{x.shape[-1]}", flush=True)  # fmt: skip
    for precision in precisions:

        def bare(bf16: bool = precision == "bf16") -> None:
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                for _ in range(len(timing) * COALITIONS // a.batch):
                    model(ready)

        def shapley(bf16: bool = precision == "bf16") -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                coalition_values(model, x, t, m, "blur", pre, batch_size=a.batch)

        rows_done = len(timing) * COALITIONS // a.batch * a.batch
        bare_rate = rows_done / timed(bare, a.repeats)
        rate = len(timing) * COALITIONS / timed(shapley, a.repeats)
        minutes = a.split_faces * COALITIONS / rate / 60
        rows.append({"precision": precision, "bare_forward_rows_s": round(bare_rate, 1),
                     "shapley_rows_s": round(rate, 1), "fraction_of_bare": round(rate / bare_rate, 3),
                     "faces_s": round(rate / COALITIONS, 2), "split_faces": a.split_faces,
                     "split_minutes": round(minutes, 2)})  # fmt: skip
        print(
            f"{precision}: bare forward {bare_rate:8.1f} rows/s   Shapley {rate:8.1f} rows/s   "
            f"fraction {rate / bare_rate:.3f}   whole split ({a.split_faces} faces) {minutes:.1f} min",
            flush=True,
        )
    agreement = []
    if a.agree and "bf16" in precisions:
        idx = pick[: a.agree]
        phi = {}
        for precision in ("fp32", "bf16"):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                values = coalition_values(model, subject.inputs[idx], subject.preds[idx], masks[idx], "blur", pre,
                                          batch_size=a.batch)  # fmt: skip
            phi[precision] = values @ shapley_weights(len(FaceRegion)).T  # (A, R)
        diff = (phi["bf16"] - phi["fp32"]).abs()
        same_top = (phi["bf16"].argmax(1) == phi["fp32"].argmax(1)).double()
        rho = scores.spearman(phi["bf16"], phi["fp32"])
        agreement.append({"faces": len(idx), "max_abs_diff": float(diff.max()), "median_abs_diff":
                          float(diff.median()), "mean_abs_value_fp32": float(phi["fp32"].abs().mean()),
                          "same_top_region": float(same_top.mean()), "median_spearman": float(rho.nanmedian()),
                          "min_spearman": float(rho.nan_to_num(1.0).min())})  # fmt: skip
        print("bf16 vs fp32 on {faces} faces: |diff| max {max_abs_diff:.4f}, median {median_abs_diff:.5f} "
              "(mean |value| {mean_abs_value_fp32:.4f}); same top region {same_top_region:.3f}; Spearman median "
              "{median_spearman:.3f}, min {min_spearman:.3f}".format(**agreement[0]), flush=True)  # fmt: skip
    if a.out:
        write_csv(a.out / "shapley.csv", rows)
        if agreement:
            write_csv(a.out / "agreement.csv", agreement)
        config = vars(a) | {"out": str(a.out), "threads": torch.get_num_threads(), "coalitions": COALITIONS}
        write_json(a.out / "provenance.json", provenance(config, device, started, commit))


if __name__ == "__main__":
    main()
