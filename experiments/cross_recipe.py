"""Do a study's robust claims hold for a model of another recipe? Verdicts side by side under one rule.

    python experiments/cross_recipe.py --study results/ferplus-regions/preliminary-600 \
        --other results/ferplus-regions/cross-recipe-100 --out results/ferplus-regions/cross-recipe-100

The other study may have measured fewer references (e.g. blur and wide blur only, where inpainting was too
slow). So every run's claims are cut to the measures the other study has and `robust_claims` (the study's
own rule) is applied to each run alone, to the study's runs together, and to the other run: the same
references, FDR, paired test and size-matched null for every column. No model is run; it reads
`LABEL/claims.csv` and `LABEL/headlines.csv`.

Writes `verdicts.csv` (runs, emotion, claim, region, robust, why_not) and `provenance.json`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from facexai.io.files import read_csv, staged, write_csv, write_json
from facexai.provenance import git_commit, now, provenance
from facexai.report.study import robust_claims


def _labels(study: Path) -> list[str]:
    return json.loads((study / "provenance.json").read_text())["config"]["labels"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", type=Path, required=True, help="a `facexai study` folder with several runs")
    ap.add_argument("--other", type=Path, required=True, help="a `facexai study` folder of the other recipe's run")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    started, commit = now(), git_commit()
    claims, heads = {}, {}
    for folder in (a.study, a.other):
        for lb in _labels(folder):
            claims[lb] = read_csv(folder / lb / "claims.csv")
            heads[lb] = read_csv(folder / lb / "headlines.csv")
    others = _labels(a.other)
    keep = {r["measure"] for lb in others for r in claims[lb]}
    claims = {lb: [r for r in rows if r["measure"] in keep] for lb, rows in claims.items()}
    heads = {lb: [h for h in rows if h["measure"] in keep] for lb, rows in heads.items()}
    mine = _labels(a.study)
    groups = [[lb] for lb in mine] + [mine] + [others]
    rows = []
    for group in groups:
        verdicts = robust_claims({lb: claims[lb] for lb in group}, {lb: heads[lb] for lb in group})
        rows += [{"runs": "+".join(group)} | v for v in verdicts]
    with staged(a.out) as stage:
        write_csv(stage / "verdicts.csv", rows)
        write_json(stage / "provenance.json", provenance(
            {"study": str(a.study), "other": str(a.other), "measures": sorted(keep)}, "cpu", started, commit))
    print(f"{len(rows)} verdicts over {len(groups)} groups of runs -> {a.out / 'verdicts.csv'}")


if __name__ == "__main__":
    main()
