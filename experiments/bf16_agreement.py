"""How far bf16 analysis (`saliency --bf16`, `occlude --bf16`) moves the findings of an fp32 analysis.

    python experiments/bf16_agreement.py FP32_DIR BF16_DIR --out DIR

Both folders hold `saliency.csv` and `occlusion.csv` of the same run and split, one analysed in
fp32 and one with --bf16. Per method (occlusion per fill), over the per-emotion region scores the
report ranks by (map relevance; occlusion's drop in target probability), grouped by true emotion:

- max_abs_shift: the largest |bf16 - fp32| of a score;
- max_shift_in_ci: the largest shift as a share of that score's fp32 95% interval width;
- same_top_region: emotions whose top region is the same (of `emotions`);
- min_spearman: the lowest per-emotion rank correlation of the regions between the two.

Writes `agreement.csv` and `provenance.json` (both at the end).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from facexai.errors import FacexaiError
from facexai.explain import importance as I
from facexai.provenance import git_commit, now, provenance
from facexai.report.report import method_scores, pivot
from facexai.report.tables import read_csv, write_csv, write_json


def _tables(folder: Path) -> tuple[list[dict], list[dict]]:
    missing = [n for n in ("saliency.csv", "occlusion.csv") if not (folder / n).is_file()]
    if missing:
        raise FacexaiError(f"{folder}: no {' or '.join(missing)}; expected a saliency and occlude output folder")
    return read_csv(folder / "saliency.csv"), read_csv(folder / "occlusion.csv")


def agreement(fp32: Path, bf16: Path) -> list[dict]:
    """One row per method (occlusion per fill): how far bf16 moved its per-emotion region scores."""
    (sal32, occ32), (sal16, occ16) = _tables(fp32), _tables(bf16)
    s32, s16 = method_scores(sal32, occ32), method_scores(sal16, occ16)
    if s32.keys() != s16.keys():
        raise FacexaiError(f"methods differ: {fp32} has {sorted(s32)}, {bf16} has {sorted(s16)}")
    rows = []
    for method, (emotions, regions, a) in s32.items():
        e16, r16, b = s16[method]
        if (e16, r16) != (emotions, regions):
            raise FacexaiError(f"{method}: emotions or regions differ between {fp32} and {bf16}")
        measure, fill = ("relevance", "") if "/" not in method else ("probability_drop", method.split("/")[1])
        rows_of = sal32 if "/" not in method else occ32
        name = method.split("/")[0]
        lo = pivot(rows_of, name, measure, fill, key="ci_low")[2]
        hi = pivot(rows_of, name, measure, fill, key="ci_high")[2]
        shift = (b - a).abs()  # (G, R)
        in_ci = shift / (hi - lo)  # (G, R); NaN or inf where an emotion has too few faces for an interval
        ok, ok_ci = torch.isfinite(shift), torch.isfinite(in_ci)
        top_same = [
            int(a[g].nan_to_num(-math.inf).argmax() == b[g].nan_to_num(-math.inf).argmax())
            for g in range(len(emotions))
            if torch.isfinite(a[g]).any()
        ]
        rows.append(
            {
                "method": method,
                "measure": measure,
                "emotions": len(top_same),
                "regions": len(regions),
                "max_abs_shift": float(shift[ok].max()),
                "max_shift_in_ci": float(in_ci[ok_ci].max()) if ok_ci.any() else math.nan,
                "same_top_region": sum(top_same),
                "min_spearman": float(I.agreement(a, b).nan_to_num(math.inf).min()),
            }
        )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fp32", type=Path, help="folder of the fp32 analysis")
    p.add_argument("bf16", type=Path, help="folder of the bf16 analysis")
    p.add_argument("--out", type=Path, required=True, help="folder for agreement.csv and provenance.json")
    args = p.parse_args()
    started, commit = now(), git_commit()
    try:
        rows = agreement(args.fp32, args.bf16)
    except FacexaiError as e:
        sys.exit(f"error: {e}")
    for r in rows:
        print(
            f"{r['method']:16s} max shift {r['max_abs_shift']:.4f} ({100 * r['max_shift_in_ci']:.1f}% of its CI)  "
            f"top region same {r['same_top_region']}/{r['emotions']}  min spearman {r['min_spearman']:.3f}"
        )
    write_csv(args.out / "agreement.csv", rows)
    config = {"fp32": str(args.fp32), "bf16": str(args.bf16), "out": str(args.out)}
    write_json(args.out / "provenance.json", provenance(config, torch.device("cpu"), started, commit))


if __name__ == "__main__":
    main()
