"""A region study over several runs (seeds): per run, the claims of explain/claims.py; across runs, which
claims are robust, and report.md that marks every headline robust or not and says why not.

A claim "region r is emotion e's top region" is robust only if, in every run and under every reference
of the Shapley values: r ranks first, r's effect survives the Benjamini-Hochberg FDR, and r beats the
runner-up in the paired test (interval above 0); and in every run r's occlusion effect beats the
size-matched null (the 95th percentile of random face patches of r's area). "r drives e" asks the
same without the ranking: a significant positive Shapley value in every run and reference, and the
size-matched null beaten.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from facexai.explain.analysis import SubjectConfig, load_subject
from facexai.explain.claims import StudyConfig, claims, effects
from facexai.facs import FaceRegion, evidence
from facexai.io.files import atomic_write_text, read_csv, staged, write_csv, write_json
from facexai.provenance import git_commit, now, provenance


def study_run(run: str | Path, out: Path, cfg: StudyConfig, scfg: SubjectConfig, data_root: str | None = None) -> Path:
    """One run's claims.csv, headlines.csv and provenance.json in `out` (skipped if already complete)."""
    if (out / "provenance.json").is_file():
        return out
    started, commit = now(), git_commit()
    subject = load_subject(run, scfg, data_root=data_root)
    result = effects(subject, cfg)
    rows, heads = claims(result, cfg)
    with staged(out) as stage:
        write_csv(stage / "claims.csv", rows)
        write_csv(stage / "headlines.csv", heads)
        config = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(cfg).items()}
        write_json(stage / "provenance.json", provenance(
            config | {"subject": vars(scfg)}, subject.run.engine.device, started, commit, run=str(run),
            n_images=len(result["subject"].data), sample=int(result["sample"].sum()), landmarks=subject.landmarks,
        ))  # fmt: skip
    return out


def _f(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def robust_claims(per_run: dict[str, list[dict]], per_run_heads: dict[str, list[dict]], main: str = "shapley/blur"
                  ) -> list[dict[str, Any]]:  # fmt: skip
    """Per emotion: the top-region claim and every driver claim, robust or not, with the reasons why not."""
    out = []
    labels = list(per_run)
    measures = {r["measure"] for rows in per_run.values() for r in rows}
    references = sorted(m for m in measures if m.startswith("shapley/"))
    emotions = list(dict.fromkeys(r["emotion"] for rows in per_run.values() for r in rows))

    def cell(label, measure, emotion, region):
        key = (measure, emotion, region)
        return next((r for r in per_run[label] if (r["measure"], r["emotion"], r["region"]) == key), None)

    for emotion in emotions:
        heads = {lb: next((h for h in per_run_heads[lb] if (h["measure"], h["emotion"]) == (main, emotion)), None)
                 for lb in labels}  # fmt: skip
        tops = {lb: h["top"] for lb, h in heads.items() if h}
        votes = list(tops.values())  # the region most runs rank first (ties: the first run's)
        candidate = max(dict.fromkeys(votes), key=votes.count) if votes else ""
        for claim, regions in (("top", [candidate]), ("driver", [r.value for r in FaceRegion])):
            for region in regions:
                why = []
                for lb in labels:
                    for ref in references:
                        c = cell(lb, ref, emotion, region)
                        if c is None or not math.isfinite(_f(c["estimate"])):
                            why.append(f"{lb} {ref}: not measured")
                            continue
                        if claim == "top" and int(c["rank"]) != 1:
                            top = next((r["region"] for r in per_run[lb] if (r["measure"], r["emotion"]) ==
                                        (ref, emotion) and int(r["rank"]) == 1), "?")  # fmt: skip
                            why.append(f"{lb} {ref}: {top} ranks first")
                        if str(c["significant"]) != "True" or _f(c["estimate"]) <= 0:
                            why.append(f"{lb} {ref}: not significant after FDR")
                        if claim == "top":
                            h = next((h for h in per_run_heads[lb] if (h["measure"], h["emotion"]) == (ref, emotion)),
                                     None)  # fmt: skip
                            if h and h["top"] == region and not _f(h["diff_low"]) > 0:
                                why.append(f"{lb} {ref}: not clearly ahead of {h['runner_up']} (paired interval)")
                    occ = cell(lb, "occlusion/blur", emotion, region)
                    if occ is None or not _f(occ["on_sample"]) > _f(occ["size_null_p95"]):
                        why.append(f"{lb}: occlusion within the size-matched null")
                out.append({"emotion": emotion, "claim": claim, "region": region, "robust": not why,
                            "why_not": "; ".join(dict.fromkeys(why))})  # fmt: skip
    return out


def _md(header: Sequence[str], body: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in body])


def study_markdown(per_run: dict[str, list[dict]], per_run_heads: dict[str, list[dict]], robust: list[dict],
                   intro: dict[str, Any]) -> str:  # fmt: skip
    labels = list(per_run)
    emotions = list(dict.fromkeys(r["emotion"] for r in robust))
    facs = evidence()
    lines = ["# Which face regions robustly drive each emotion", "", intro["text"], "", "## Headline per emotion", ""]
    for e in emotions:
        top = next(r for r in robust if r["emotion"] == e and r["claim"] == "top")
        drivers = [r["region"] for r in robust if r["emotion"] == e and r["claim"] == "driver" and r["robust"]]
        mark = "**robust**" if top["robust"] else "not robust"
        line = f"- **{e}** (the {intro['target']} class's probability): top region **{top['region']}**: {mark}"
        if not top["robust"]:
            reasons = top["why_not"].split("; ")
            line += f" ({'; '.join(reasons[:3])}{'; ...' if len(reasons) > 3 else ''})"
        line += f". Robust drivers: {', '.join(drivers) if drivers else 'none'}."
        line += f" FACS prototype regions: {', '.join(facs.get(e, {}).get('regions', [])) or 'none'}."
        lines.append(line)
    lines += ["", "## Top region per run and measure", ""]
    measures = list(dict.fromkeys(h["measure"] for heads in per_run_heads.values() for h in heads))
    body = []
    for e in emotions:
        for m in measures:
            row = [e, m]
            for lb in labels:
                h = next((h for h in per_run_heads[lb] if (h["measure"], h["emotion"]) == (m, e)), None)
                row.append("-" if h is None else f"{h['top']} ({_f(h['difference']):+.3f} [{_f(h['diff_low']):+.3f}, "
                           f"{_f(h['diff_high']):+.3f}] over {h['runner_up']})")  # fmt: skip
            body.append(row)
    lines += [_md(["emotion", "measure", *labels], body), ""]
    lines += ["## Tables", "", "- [`robust.csv`](robust.csv): every claim, robust or not, and why not",
              *(f"- [`{lb}/claims.csv`]({lb}/claims.csv), [`{lb}/headlines.csv`]({lb}/headlines.csv)" for lb in labels),
              ""]  # fmt: skip
    return "\n".join(lines)


def write_study(out: Path, runs: Sequence[str | Path], labels: Sequence[str], cfg: StudyConfig, scfg: SubjectConfig,
                data_root: str | None = None) -> Path:  # fmt: skip
    """Every run's claims (resumable: a finished run is not redone), then robust.csv and report.md."""
    started, commit = now(), git_commit()
    for run, lb in zip(runs, labels, strict=True):
        study_run(run, out / lb, cfg, scfg, data_root)
    per_run = {lb: read_csv(out / lb / "claims.csv") for lb in labels}
    per_heads = {lb: read_csv(out / lb / "headlines.csv") for lb in labels}
    robust = robust_claims(per_run, per_heads, f"shapley/{cfg.main}")
    target = cfg.target or cfg.group
    text = (f"Runs {', '.join(f'`{r}`' for r in runs)} ({', '.join(labels)}); faces grouped by their {cfg.group} "
            f"emotion, and the {'true' if target == 'true' else 'predicted'} class explained"
            f"{'; correctly classified faces only' if cfg.correct_only else ''}. Shapley values with the "
            f"{cfg.main} reference on every face, and with {', '.join(cfg.others)} on a sample of up to "
            f"{cfg.per_emotion} faces per emotion. Every claim below is tested in every run and under every "
            f"reference; FDR {cfg.fdr} (Benjamini-Hochberg over the emotion x region claims of each measure), "
            "one-sided sign-flip p-values, paired bootstrap against the runner-up, and a size-matched null "
            f"({cfg.patches} random face patches of the region's area per face).")  # fmt: skip
    intro = {"text": text, "target": "true" if target == "true" else "predicted"}
    with staged(out) as stage:
        write_csv(stage / "robust.csv", robust)
        atomic_write_text(stage / "report.md", study_markdown(per_run, per_heads, robust, intro))
        config = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(cfg).items()}
        config |= {"runs": [str(r) for r in runs], "labels": list(labels)}
        write_json(stage / "provenance.json", provenance(config, "cpu", started, commit))
    return out / "report.md"


__all__ = ["robust_claims", "study_run", "write_study"]
