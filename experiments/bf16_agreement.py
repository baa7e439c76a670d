"""How far bf16 analysis (`saliency --bf16`, `occlude --bf16`) moves the findings of an fp32 analysis.

    python experiments/bf16_agreement.py FP32_DIR BF16_DIR --out DIR

Both folders hold `saliency.csv`, `occlusion.csv` and `provenance.json` of the same run, split
and images, one analysed in fp32 and one with --bf16 (checked from provenance). For every table
(grouping by true or predicted emotion x method x fill x measure), over its per-emotion region
estimates:

- max_abs_shift: the largest |bf16 - fp32|;
- max_shift_in_ci: the largest shift as a share of that estimate's fp32 95% interval width;
- same_top_region: emotions whose top region is the same (of `emotions`);
- min_spearman: the lowest per-emotion rank correlation of the regions between the two.

Writes `agreement.csv` and `provenance.json`, both at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from facexai.errors import FacexaiError
from facexai.explain import importance as I
from facexai.io.files import read_csv, write_csv, write_json
from facexai.provenance import git_commit, now, provenance
from facexai.report.report import pivot

SAME = ("data", "n_images")  # provenance fields both analyses must share (run paths may differ: a copied run)
SAME_CONFIG = ("split", "target", "limit", "landmarks", "margin", "ig_steps", "ig_baseline", "n_boot", "seed")


def _analyses(folder: Path) -> tuple[list[dict], dict]:
    """Tidy rows of saliency.csv + occlusion.csv, and the per-analysis provenance entries."""
    missing = [n for n in ("saliency.csv", "occlusion.csv", "provenance.json") if not (folder / n).is_file()]
    if missing:
        raise FacexaiError(f"{folder}: no {', '.join(missing)}; expected a saliency and occlude output folder")
    rows = read_csv(folder / "saliency.csv") + read_csv(folder / "occlusion.csv")
    if not rows:
        raise FacexaiError(f"{folder}: saliency.csv and occlusion.csv hold no rows")
    return rows, json.loads((folder / "provenance.json").read_text()).get("analyses", {})


def _check_pair(fp32: Path, p32: dict, bf16: Path, p16: dict) -> None:
    for name in ("saliency", "occlusion"):
        if name not in p32 or name not in p16:
            raise FacexaiError(f"{fp32 if name not in p32 else bf16}/provenance.json: no {name} analysis")
        a, b = p32[name], p16[name]
        if a.get("run") != b.get("run"):
            print(f"note: {name} ran on {a.get('run')} and on {b.get('run')}; assumed the same model", file=sys.stderr)
        if a["config"].get("bf16", False) or not b["config"].get("bf16", False):
            raise FacexaiError(f"{name}: expected fp32 in {fp32} and --bf16 in {bf16} (provenance config bf16)")
        for key, x, y in [(k, a.get(k), b.get(k)) for k in SAME] + [
            (k, a["config"].get(k), b["config"].get(k)) for k in SAME_CONFIG
        ]:
            if x != y:
                raise FacexaiError(f"{name}: {key} differs: {x!r} in {fp32}, {y!r} in {bf16}")


def agreement(fp32: Path, bf16: Path) -> list[dict]:
    """One row per table (group x method x fill x measure): how far bf16 moved its estimates."""
    (rows32, p32), (rows16, p16) = _analyses(fp32), _analyses(bf16)
    _check_pair(fp32, p32, bf16, p16)
    tables = list(dict.fromkeys((r["group"], r["method"], r["fill"] or "", r["measure"]) for r in rows32))
    if set(tables) != {(r["group"], r["method"], r["fill"] or "", r["measure"]) for r in rows16}:
        raise FacexaiError(f"{fp32} and {bf16} hold different tables (groups, methods, fills or measures)")
    out = []
    for group, method, fill, measure in tables:
        emotions, regions, a = pivot(rows32, method, measure, fill, group)
        e16, r16, b = pivot(rows16, method, measure, fill, group)
        if sorted(e16) != sorted(emotions) or sorted(r16) != sorted(regions):
            raise FacexaiError(f"{group}/{method}/{fill}/{measure}: emotions or regions differ")
        b = b[[e16.index(e) for e in emotions]][:, [r16.index(r) for r in regions]]  # (G, R) in fp32's order
        lo = pivot(rows32, method, measure, fill, group, key="ci_low")[2]
        hi = pivot(rows32, method, measure, fill, group, key="ci_high")[2]
        shift = (b - a).abs()  # (G, R)
        in_ci = shift / (hi - lo)  # NaN where an emotion has no interval; inf where it is 0 wide and moved
        rho = I.agreement(a, b)  # (G,)
        scored = [g for g in range(len(emotions)) if torch.isfinite(a[g]).any() and torch.isfinite(b[g]).any()]
        out.append(
            {
                "group": group,
                "method": method,
                "fill": fill,
                "measure": measure,
                "emotions": len(scored),
                "regions": len(regions),
                "max_abs_shift": _max(shift),
                "max_shift_in_ci": _max(in_ci),
                "same_top_region": sum(
                    int(a[g].nan_to_num(-math.inf).argmax() == b[g].nan_to_num(-math.inf).argmax()) for g in scored
                ),
                "min_spearman": float(rho[~rho.isnan()].min()) if (~rho.isnan()).any() else math.nan,
            }
        )
    return out


def _max(t: torch.Tensor) -> float:
    kept = t[~t.isnan()]
    return float(kept.max()) if len(kept) else math.nan


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fp32", type=Path, help="folder of the fp32 analysis")
    p.add_argument("bf16", type=Path, help="folder of the bf16 analysis")
    p.add_argument("--out", type=Path, required=True, help="folder for agreement.csv and provenance.json")
    args = p.parse_args()
    started, commit = now(), git_commit()
    try:
        if args.out.resolve() in (args.fp32.resolve(), args.bf16.resolve()):
            raise FacexaiError(f"--out {args.out} is an input folder; its agreement.csv and provenance.json are kept")
        rows = agreement(args.fp32, args.bf16)
    except FacexaiError as e:
        sys.exit(f"error: {e}")
    except (KeyError, ValueError) as e:
        sys.exit(f"error: {args.fp32} or {args.bf16}: malformed table or provenance ({type(e).__name__}: {e})")
    for r in rows:
        if r["group"] == "true" and r["measure"] in ("relevance", "probability_drop"):
            print(
                f"{r['method']:10s} {r['fill']:6s} {r['measure']:17s} max shift {r['max_abs_shift']:.4f} "
                f"({100 * r['max_shift_in_ci']:.1f}% of its CI)  top region same {r['same_top_region']}/"
                f"{r['emotions']}  min spearman {r['min_spearman']:.3f}"
            )
    config = {"fp32": str(args.fp32), "bf16": str(args.bf16), "out": str(args.out)}
    record = provenance(config, torch.device("cpu"), started, commit)
    write_csv(args.out / "agreement.csv", rows)
    write_json(args.out / "provenance.json", record)


if __name__ == "__main__":
    main()
