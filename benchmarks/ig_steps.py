"""How few integrated-gradients steps keep the convergence delta within today's 32-step median?

    python benchmarks/ig_steps.py --run results/ferplus-seed-b-48 --data-root ../shared/data/ferplus \\
        --n 140 --threads 2 --out results/benchmarks/ig-steps

For each step count, on the same stratified test faces: the median |delta| (sum of attributions minus
f(x) - f(x'), captum's Gauss-Legendre rule), the seconds per face, and the Spearman correlation of
each face's region relevance with the 32-step one. The fewest steps whose median |delta| is at most the
32-step median is printed as the pick.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from facexai.explain import scores
from facexai.explain.analysis import ExplainConfig, SubjectConfig, explain, load_subject
from facexai.explain.scorecard import stratified
from facexai.io.files import write_csv, write_json
from facexai.provenance import git_commit, now, provenance


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--data-root", default=None)
    p.add_argument("--n", type=int, default=140, help="test faces, stratified by predicted emotion")
    p.add_argument("--steps", default="4,8,12,16,24,32")
    p.add_argument("--baseline", default="black")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    started, commit = now(), git_commit()
    if a.threads:
        torch.set_num_threads(a.threads)
    subject = load_subject(a.run, SubjectConfig(landmarks="template", device="cpu"), data_root=a.data_root)
    subject = subject.select(stratified(subject.preds, a.n))
    steps = sorted({int(s) for s in a.steps.split(",")} | {32})
    found = {}
    for s in steps:
        cfg = ExplainConfig(ig_steps=s, ig_baseline=a.baseline, bf16=a.bf16, progress=False)
        t = time.perf_counter()
        att = explain(subject, "ig", cfg)
        found[s] = (att, (time.perf_counter() - t) / len(subject.labels))
    ref = found[32][0].regions
    rows = []
    for s in steps:
        att, seconds = found[s]
        rho = scores.spearman(att.regions, ref)
        rows.append({"steps": s, "median_abs_delta": float(att.extras["delta"].abs().median()),
                     "seconds_per_face": round(seconds, 4), "relevance_spearman_with_32": float(rho.nanmedian()),
                     "faces": len(subject.labels)})  # fmt: skip
        print(f"{s:3d} steps  median |delta| {rows[-1]['median_abs_delta']:.5f}  {seconds * 1000:7.1f} ms/face  "
              f"relevance rho with 32 steps {rows[-1]['relevance_spearman_with_32']:.3f}")  # fmt: skip
    limit = rows[-1]["median_abs_delta"]
    pick = min(r["steps"] for r in rows if r["median_abs_delta"] <= limit)
    print(f"fewest steps within the 32-step median |delta| ({limit:.5f}): {pick}")
    if a.out:
        write_csv(a.out / "ig_steps.csv", rows)
        write_json(a.out / "provenance.json", provenance(vars(a) | {"out": str(a.out), "pick": pick}, "cpu", started,
                                                          commit))  # fmt: skip


if __name__ == "__main__":
    main()
