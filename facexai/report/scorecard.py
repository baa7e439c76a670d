"""scorecard.csv, scorecard.md (a verdict per method) and scorecard.png for a run: which attribution methods
can be trusted for region questions on this model, measured against the null explainers.

A method is trusted here when it beats the best blind null (uniform, centre-prior, random map, the method
on a re-initialised model) with the lower end of the paired 95% interval above zero, on the truth
(top-region rate and NDCG; synthetic faces) and on faithfulness (deletion and insertion areas, ROAD).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from facexai.emotions import Emotion
from facexai.explain.analysis import Subject
from facexai.explain.methods import METHODS
from facexai.explain.scorecard import COLUMNS, ScorecardConfig, scorecard
from facexai.explain.truth import intervention_effects
from facexai.facs import FaceRegion
from facexai.io import figures
from facexai.io.files import atomic_write_text, staged, write_csv, write_json
from facexai.provenance import provenance

TRUTH_METRICS = ("top_hit", "ndcg")
FAITH_METRICS = ("deletion_auc", "insertion_auc", "road")
TARGETS = {"top_hit": 0.8, "ndcg": 0.9, "top_hit_lift": 0.3}  # the bar for a trusted estimator


def label(name: str) -> str:
    base, _, null = name.partition("@")
    text = METHODS[base].label if base in METHODS else {"constant": "best constant ranking (null)"}.get(base, base)
    return f"{text} on a random model (null)" if null else text


def _cell(rows: Sequence[dict], part: str, method: str, metric: str, group: str = "all") -> dict | None:
    return next((r for r in rows if (r["part"], r["method"], r["metric"], r["group"]) == (part, method, metric, group)),
                None)  # fmt: skip


def _fmt(v: float, digits: int = 2) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:.{digits}f}"


def _with_lift(r: dict | None, blind: bool = True) -> str:
    if r is None:
        return "-"
    key = "blind_lift" if blind else "lift"
    lift = f" ({r[key]:+.2f} [{r[key + '_low']:+.2f}, {r[key + '_high']:+.2f}])" if math.isfinite(r[key]) else ""
    return f"{_fmt(r['estimate'])}{lift}"


def verdicts(rows: Sequence[dict]) -> list[dict[str, Any]]:
    """Per method: passes truth (None where there is none), passes faithfulness, trusted, meets the targets."""
    out = []
    has_truth = any(r["part"] == "truth" for r in rows)
    def beats(part: str, method: str, metric: str) -> bool:
        r = _cell(rows, part, method, metric)
        return r is not None and math.isfinite(r["blind_lift_low"]) and r["blind_lift_low"] > 0

    for method in dict.fromkeys(r["method"] for r in rows if r["kind"] == "method"):
        truth = all(beats("truth", method, m) for m in TRUTH_METRICS) if has_truth else None
        faith = all(beats("faithfulness", method, m) for m in FAITH_METRICS)
        targets = None
        if has_truth:
            top, nd = _cell(rows, "truth", method, "top_hit"), _cell(rows, "truth", method, "ndcg")
            targets = (top["estimate"] >= TARGETS["top_hit"] and nd["estimate"] >= TARGETS["ndcg"]
                       and top["blind_lift"] >= TARGETS["top_hit_lift"])  # fmt: skip
        out.append({"method": method, "truth": truth, "faithfulness": faith,
                    "trusted": faith and truth is not False, "targets": targets})  # fmt: skip
    return out


def _verdict_table(rows: Sequence[dict]) -> list[str]:
    has_truth = any(r["part"] == "truth" for r in rows)
    head = ["method"] + (["top-region rate", "NDCG"] if has_truth else []) + ["deletion area", "insertion area",
                                                                             "ROAD", "verdict"]  # fmt: skip
    body = []
    for v in verdicts(rows):
        m = v["method"]
        cells = [label(m)]
        if has_truth:
            cells += [_with_lift(_cell(rows, "truth", m, k)) for k in TRUTH_METRICS]
        cells += [_with_lift(_cell(rows, "faithfulness", m, k)) for k in FAITH_METRICS]
        if v["trusted"]:
            word = "**trusted**" + (" (meets the targets)" if v["targets"] else "")
        else:
            why = [p for p, ok in (("truth", v["truth"]), ("faithfulness", v["faithfulness"])) if ok is False]
            word = f"not trusted ({' and '.join(why)} at or below the best blind null)"
        body.append(cells + [word])
    return [_md(head, body)]


def _md(header: Sequence[str], body: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in body])


def _null_table(rows: Sequence[dict]) -> list[str]:
    parts = [p for p in ("truth", "faithfulness") if any(r["part"] == p for r in rows)]
    metrics = [(p, m) for p in parts for m in (TRUTH_METRICS if p == "truth" else FAITH_METRICS)]
    names = list(dict.fromkeys(r["method"] for r in rows if r["kind"] == "null"))
    body = [[label(n), *(_fmt(c["estimate"]) if (c := _cell(rows, p, n, m)) else "-" for p, m in metrics)]
            for n in names]  # fmt: skip
    return [_md(["null", *(m.replace("_", " ") for _, m in metrics)], body)]


def _further_checks(rows: Sequence[dict]) -> list[str]:
    """Class sensitivity, FACS mass and the pointing game per method (not part of the verdict)."""
    metrics = ("class_sensitivity", "facs_mass", "pointing")
    names = [v["method"] for v in verdicts(rows)]
    body = [[label(n), *(_with_lift(c) if (c := _cell(rows, "faithfulness", n, m)) and math.isfinite(c["estimate"])
                          else "-" for m in metrics)]
            for n in names]  # fmt: skip
    return [
        "## Further checks", "",
        "Class sensitivity: the Spearman correlation of a map method's region order for the predicted class "
        "and for the runner-up class (1 = the same order for both; lower is better, no null applies). FACS mass: the "
        "share of the map inside the predicted emotion's FACS prototype regions; pointing game: the top "
        "region is one of them. Beside the verdict, not part of it: what the model uses need not be FACS.", "",
        _md(["method", "class sensitivity", "FACS mass", "pointing game"], body), "",
    ]


def _constant_lines(rows: Sequence[dict]) -> list[str]:
    if not any(r["part"] == "truth" for r in rows):
        return []
    body = []
    for v in verdicts(rows):
        r = _cell(rows, "truth", v["method"], "top_hit")
        n = _cell(rows, "truth", v["method"], "ndcg")
        body.append([label(v["method"]), _with_lift(r, blind=False), _with_lift(n, blind=False), r["best_null"]])
    const = _cell(rows, "truth", "constant", "top_hit")
    return [
        "## Against the best constant ranking", "",
        f"The best constant ranking knows each face's emotion and the truth on the other half of the faces; "
        f"it reaches a top-region rate of {_fmt(const['estimate'])} here. A method's lift over it (the best of "
        "all nulls) says whether the method knows more about a face than its emotion's typical answer; where "
        "every face of an emotion has the same true top region, nothing can beat it.", "",
        _md(["method", "top-region rate (lift over the best null)", "NDCG (lift)", "best null"], body), "",
    ]  # fmt: skip


def scorecard_markdown(rows: Sequence[dict], intro: dict[str, Any]) -> str:
    has_truth = any(r["part"] == "truth" for r in rows)
    variant = f" ({intro['variant']} faces)" if intro.get("variant") else ""
    lines = [
        "# Method scorecard", "",
        f"Model `{intro['run']}`, data set `{intro['data']}`{variant}, "
        f"split `{intro['split']}`, {intro['n']} faces; the predicted class is explained. Every number is a mean "
        "over faces with a 95% bootstrap interval; in brackets, the lift over the best blind null (uniform map, "
        "centre-prior Gaussian, random map, the same method on a re-initialised model) on the same faces, with "
        "a paired 95% interval. Positive lift = better than that null (deletion area: lower is better, and its "
        "lift is sign-adjusted).", "",
    ]  # fmt: skip
    if has_truth:
        lines += [
            "**Truth** is measured by intervention: each face is re-rendered with one region neutral and "
            "everything else identical; the drop in the predicted class's probability is that region's true "
            f"effect (`intervention_truth.csv`). Top-region rate: the method's top region is the true top, on "
            f"faces whose true top leads the runner-up by at least {intro['margin']}; NDCG: the method's order "
            "with the positive true effects as gains. Neutral faces are scored apart (below).", "",
        ]  # fmt: skip
    lines += [
        "**Faithfulness** needs no truth: deletion and insertion areas (regions removed, or put back, in the "
        f"method's order; {intro['reference']} reference) on {intro['faithfulness_n']} faces, and ROAD "
        f"(pytorch-grad-cam) on {intro['road_n']} faces, stratified by predicted emotion.", "",
        "## Verdict per method", "",
        *_verdict_table(rows), "",
        "Trusted: the lift over the best blind null has its paired 95% interval above 0 on every metric of each "
        "part scored (" + ", ".join(m.replace("_", " ") for m in (TRUTH_METRICS if has_truth else ())
                                    + FAITH_METRICS) + ").", "",
        *([f"Targets of a trusted estimator: top-region rate >= {TARGETS['top_hit']}, NDCG >= {TARGETS['ndcg']}, "
           f"and a top-region rate >= {TARGETS['top_hit_lift']} above the best null.", ""] if has_truth else []),
        *_constant_lines(rows),
        *_further_checks(rows),
        "## The nulls", "", *_null_table(rows), "",
    ]  # fmt: skip
    if intro.get("neutral"):
        lines += ["## Neutral faces", "", intro["neutral"], ""]
    lines += ["## Files", "", "![scorecard](scorecard.png)", "",
              "- [`scorecard.csv`](scorecard.csv): every method, null, metric and emotion",
              *(["- [`intervention_truth.csv`](intervention_truth.csv): the true effect of every region of every face"]
                if has_truth else []), ""]  # fmt: skip
    return "\n".join(lines)


def truth_table(subject: Subject, truth) -> list[dict[str, Any]]:
    """Tidy rows of (N, R) true effects: id, true emotion, explained class, region, effect."""
    classes = subject.data.classes
    return [{"id": face, "emotion": str(classes[int(subject.labels[i])]), "target": str(classes[int(subject.preds[i])]),
             "region": region.value, "effect": float(truth[i, r])}
            for i, face in enumerate(subject.data.ids) for r, region in enumerate(FaceRegion)]  # fmt: skip


def write_truth(out: Path, subject: Subject, started: str, commit: str | None, progress: bool = True) -> Path:
    """intervention_truth.csv (and provenance.json) for a subject of synthetic faces: each region's true effect
    on the model's probability of the predicted class."""
    truth = intervention_effects(subject.run, subject.data, subject.preds, progress=progress)
    with staged(out) as stage:
        write_csv(stage / "intervention_truth.csv", truth_table(subject, truth))
        write_json(stage / "provenance.json", provenance({"subject": vars(subject.config)}, subject.run.engine.device,
                                                         started, commit, run=subject.run.name,
                                                         n_images=len(subject.data)))  # fmt: skip
    return out / "intervention_truth.csv"


def write_scorecard(out: Path, subject: Subject, cfg: ScorecardConfig, started: str, commit: str | None) -> Path:
    """Compute the scorecard of a subject and write scorecard.csv, intervention_truth.csv (synthetic faces),
    scorecard.md, scorecard.png and provenance.json into `out`, whole or not at all."""
    rows, tensors = scorecard(subject, cfg)
    subject = tensors["subject"]  # the faces scored (a stratified sample where there is no truth)
    intro = {"run": subject.run.name, "data": subject.data.name, "split": subject.config.split,
             "n": len(subject.data), "margin": cfg.margin, "reference": cfg.reference,
             "faithfulness_n": min(cfg.faithfulness_n, len(subject.data)), "road_n": min(cfg.road_n, len(subject.data)),
             "variant": subject.data.meta.get("options", {}).get("variant")}  # fmt: skip
    truth_rows = []
    if "truth" in tensors:
        truth = tensors["truth"]
        neutral = subject.labels == subject.data.classes.index(Emotion.NEUTRAL)
        top = truth[neutral].max(1).values
        intro["neutral"] = (
            f"{int(neutral.sum())} neutral faces: no region has a true effect of {cfg.margin} or more on "
            f"{_fmt(float((top < cfg.margin).double().mean()) * 100, 0)}% of them (mean largest true effect "
            f"{_fmt(float(top.mean()), 3)}); they are left out of the rank scores."
        )
        truth_rows = truth_table(subject, truth)
    with staged(out, remove=[] if truth_rows else ["intervention_truth.csv"]) as stage:
        write_csv(stage / "scorecard.csv", rows, COLUMNS)
        if truth_rows:
            write_csv(stage / "intervention_truth.csv", truth_rows)
        figures.lift_chart(rows, stage / "scorecard.png", label, f"{subject.run.name}: lift over the best blind null")
        atomic_write_text(stage / "scorecard.md", scorecard_markdown(rows, intro))
        config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(cfg).items()}
        config |= {"subject": {k: v for k, v in vars(subject.config).items()}}
        write_json(stage / "provenance.json", provenance(config, subject.run.engine.device, started, commit,
                                                         run=subject.run.name, n_images=len(subject.data),
                                                         landmarks=subject.landmarks))  # fmt: skip
    return out / "scorecard.md"
