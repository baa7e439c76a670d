"""report.md for an analysis folder: the findings of `saliency` and `occlude` tied together.

Reads the tidy tables (saliency.csv, occlusion.csv, sanity.csv, evidence.json), derives
agreement.csv (rank correlation of region scores between methods, per emotion) and, where the
data set knows its evidence regions (synthetic faces), truth.csv; draws the heat tables and bar
charts from the tables; and writes report.md with one headline sentence per emotion.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import torch

from facexai import facs
from facexai.emotions import Emotion
from facexai.errors import DataNotFoundError
from facexai.explain import importance as I
from facexai.facs import FaceRegion
from facexai.io import figures
from facexai.io.files import atomic_write_text, read_csv, staged, write_csv, write_json
from facexai.provenance import git_commit, now, provenance
from facexai.report.html import write_html

MAP_NAMES = {"gradcam": "Grad-CAM", "gradcampp": "Grad-CAM++", "hirescam": "HiResCAM", "ig": "integrated gradients"}
MAP_MEASURE = "relevance"  # area-normalised: 1.0 = no preference
OCC_MEASURE = "probability_drop"  # graded, so regions rank without ties


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def pivot(
    rows: Sequence[dict], method: str, measure: str, fill: str = "", group: str = "true", key: str = "estimate"
) -> tuple[list[str], list[str], torch.Tensor]:
    """(emotions, regions, (G, R) float64 of `key`) from tidy rows, in first-seen order; missing cells NaN."""
    picked = [
        r for r in rows if (r["method"], r["measure"], r["fill"] or "", r["group"]) == (method, measure, fill, group)
    ]
    emotions = list(dict.fromkeys(r["emotion"] for r in picked))
    regions = list(dict.fromkeys(r["region"] for r in picked))
    table = torch.full((len(emotions), len(regions)), math.nan, dtype=torch.float64)
    for r in picked:
        table[emotions.index(r["emotion"]), regions.index(r["region"])] = _float(r[key])
    return emotions, regions, table


def region_table(
    rows: Sequence[dict], method: str, measure: str | None = None, fill: str = "", group: str = "true"
) -> str:
    """A plain-text emotion x region table of one method's estimates from tidy rows (for printing), with
    each emotion's face count n; "-" where an emotion has no faces.

    measure: default relevance for map methods, probability_drop for occlusion.
    """
    measure = measure or (OCC_MEASURE if method == "occlusion" else MAP_MEASURE)
    emotions, regions, est = pivot(rows, method, measure, fill, group)
    if not emotions:
        raise DataNotFoundError(f"no rows for method {method!r}, measure {measure!r}, fill {fill!r}, group {group!r}")
    _, _, n = pivot(rows, method, measure, fill, group, key="n")
    width = max(len(r) for r in regions) + 1
    lines = [f"{method} {measure} ({fill + ' fill, ' if fill else ''}by {group} emotion)",
             f"{'':<10}{'n':>5}" + "".join(f"{r:>{width}}" for r in regions)]  # fmt: skip
    for g, e in enumerate(emotions):
        faces = int(torch.nan_to_num(n[g], nan=0).max())
        cells = "".join(f"{v:>{width}.2f}" if math.isfinite(v) else f"{'-':>{width}}" for v in est[g].tolist())
        lines.append(f"{e:<10}{faces:>5}" + cells)
    return "\n".join(lines)


def method_scores(saliency: Sequence[dict], occlusion: Sequence[dict]) -> dict[str, tuple[list, list, torch.Tensor]]:
    """Per-emotion region scores of every method present: map methods by relevance, occlusion (per fill)
    by the drop in target probability. Keys: "gradcam", ..., "occlusion/blur", ...; higher = more important."""
    scores = {}
    for method in dict.fromkeys(r["method"] for r in saliency):
        scores[method] = pivot(saliency, method, MAP_MEASURE)
    for fill in dict.fromkeys(r["fill"] for r in occlusion):
        scores[f"occlusion/{fill}"] = pivot(occlusion, "occlusion", OCC_MEASURE, fill)
    return {k: v for k, v in scores.items() if v[0]}


def label(method: str) -> str:
    if method.startswith("occlusion/"):
        return f"occlusion ({method.split('/', 1)[1]} fill)"
    return MAP_NAMES.get(method, method)


def agreement_rows(scores: dict[str, tuple[list, list, torch.Tensor]]) -> list[dict[str, Any]]:
    """One row per emotion and pair of methods: Spearman's rho and Kendall's tau over the region scores."""
    rows = []
    for a, b in combinations(scores, 2):
        (emo_a, reg_a, x), (emo_b, reg_b, y) = scores[a], scores[b]
        emotions = [e for e in emo_a if e in emo_b]
        regions = [r for r in reg_a if r in reg_b]
        if not emotions or len(regions) < 3:
            continue
        xs = x[[emo_a.index(e) for e in emotions]][:, [reg_a.index(r) for r in regions]]
        ys = y[[emo_b.index(e) for e in emotions]][:, [reg_b.index(r) for r in regions]]
        rho, tau = I.agreement(xs, ys, "spearman"), I.agreement(xs, ys, "kendall")
        for g, emotion in enumerate(emotions):
            rows.append({
                "emotion": emotion, "method_a": a, "method_b": b, "regions": len(regions),
                "spearman": float(rho[g]), "kendall": float(tau[g]),
            })  # fmt: skip
    return rows


def ranking_rows(scores: dict[str, tuple[list, list, torch.Tensor]]) -> list[dict[str, Any]]:
    """One row per method x emotion x region: its rank (1 = most important) and score; NaN scores get no rank."""
    rows = []
    for method, (emotions, regions, est) in scores.items():
        ranks = I.rank_regions(est)  # (G, R)
        for g, emotion in enumerate(emotions):
            for r in ranks[g].argsort().tolist():
                scored = bool(est[g, r].isfinite())
                rows.append({"method": method, "emotion": emotion, "rank": int(ranks[g, r]) if scored else "",
                             "region": regions[r], "score": float(est[g, r])})  # fmt: skip
    return rows


def truth_rows(
    scores: dict[str, tuple[list, list, torch.Tensor]],
    evidence: dict[str, dict[str, list[str]]],
    saliency: Sequence[dict] = (),
) -> list[dict[str, Any]]:
    """Every method scored against the known evidence regions (importance.truth_scores), one row per method x emotion.

    Map methods also get evidence_mass_share from their "mass" rows (the share of attribution in the evidence).
    """
    rows = []
    for method, (emotions, regions, est) in scores.items():
        mass = None
        if not method.startswith("occlusion/"):
            m_emo, m_reg, m = pivot(saliency, method, "mass")
            if m_emo == emotions and m_reg == regions:
                mass = m
        regs, emos = [FaceRegion(r) for r in regions], [Emotion(e) for e in emotions]
        rows += [{"method": method, **row} for row in I.truth_scores(est, regs, emos, evidence, mass)]
    return rows


def _read(folder: Path, name: str) -> list[dict[str, str]]:
    path = folder / name
    return read_csv(path) if path.is_file() else []


def _ci(row: dict) -> str:
    return f"{_float(row['estimate']):.2f} [{_float(row['ci_low']):.2f}, {_float(row['ci_high']):.2f}]"


def _top(emotion: str, entry: tuple[list, list, torch.Tensor]) -> str | None:
    emotions, regions, est = entry
    if emotion not in emotions:
        return None
    row = est[emotions.index(emotion)]
    return regions[int(torch.nan_to_num(row, nan=-math.inf).argmax())] if row.isfinite().any() else None


def _explained(emotion: str, target: str) -> str:
    """The class whose probability a row of faces labelled `emotion` reports, by the analysis' target."""
    return f"the {emotion} probability" if target == "true" else "the predicted class's probability"


def _change(row: dict) -> str:
    """'drops by x [lo, hi]', or 'rises by ...' when the estimate is negative: say what was measured."""
    est, lo, hi = (_float(row[k]) for k in ("estimate", "ci_low", "ci_high"))
    if est >= 0:
        return f"drops by {_ci(row)}"
    return f"rises by {-est:.2f} [{-hi:.2f}, {-lo:.2f}]"


def headline(emotion: str, scores: dict, occlusion: Sequence[dict], fill: str | None, target: str = "pred") -> str:
    """One sentence: the region whose occlusion costs the emotion most (with its CI), and which map methods agree.

    It names the class whose probability it reports: the true class (target "true") or each face's predicted
    class (target "pred", the default), on the faces labelled `emotion`. With one region measured it says what
    was measured, not a ranking."""
    maps = {m: _top(emotion, v) for m, v in scores.items() if not m.startswith("occlusion/")}
    if fill is not None:
        top = _top(emotion, scores[f"occlusion/{fill}"])
        rows = {
            (r["region"], r["measure"]): r
            for r in occlusion
            if r["emotion"] == emotion and r["fill"] == fill and r["group"] == "true" and r["method"] == "occlusion"
        }
        if top is None:
            return f"**{emotion}**: no images of this emotion in the analysed split."
        drop, acc = rows[(top, OCC_MEASURE)], rows.get((top, "accuracy_drop"))
        one = len({region for region, _ in rows}) == 1
        what = f"occluding the **{top}** ({fill} fill)" + (":" if one else " costs most:")
        text = f"**{emotion}**: {what} {_explained(emotion, target)} {_change(drop)}"
        text += f" and accuracy {_change(acc)}" if acc else ""
        text += f" (faces labelled {emotion}, n={drop['n']}, 95% bootstrap CI)"
        agree = [] if one else [label(m) for m, t in maps.items() if t == top]
    else:
        votes = [t for t in maps.values() if t]
        if not votes:
            return f"**{emotion}**: no images of this emotion in the analysed split."
        top = max(dict.fromkeys(votes), key=votes.count)
        agree = [label(m) for m, t in maps.items() if t == top]
        cls = f"the {emotion} class" if target == "true" else "the predicted class"
        text = (f"**{emotion}**: the **{top}** gets the most attribution (for {cls}) per unit of area under "
                f"{', '.join(agree)}")  # fmt: skip
        agree = []  # already said
    other = [f"{label(m)}: {t}" for m, t in maps.items() if t and t != top]
    if agree:
        text += f"; {', '.join(agree)} {'rank' if len(agree) > 1 else 'ranks'} the {top} first too"
    if other:
        text += f" ({'; '.join(other)})"
    return text + "."


def _md_table(header: Sequence[str], body: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def _fmt(x: float, digits: int = 2) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.{digits}f}"


@dataclass
class Findings:
    """What an analysis folder holds (saliency.csv, occlusion.csv, sanity.csv, provenance.json, evidence.json)
    and what the report derives from it: method scores, rankings, agreement and the check against truth."""

    folder: Path
    saliency: list[dict]
    occlusion: list[dict]
    sanity: list[dict]
    provenance: dict[str, Any]
    fill: str | None  # the occlusion fill the headlines use
    known: bool  # the data set knows its evidence regions (synthetic faces); else the FACS prototypes stand in
    scores: dict[str, tuple[list, list, torch.Tensor]] = field(default_factory=dict)
    ranking: list[dict] = field(default_factory=list)
    agreement: list[dict] = field(default_factory=list)
    truth: list[dict] = field(default_factory=list)

    @property
    def truth_csv(self) -> str:
        return "truth.csv" if self.known else "facs.csv"

    @property
    def emotions(self) -> list[str]:
        return list(dict.fromkeys(r["emotion"] for r in (self.occlusion or self.saliency)))


def read_findings(folder: str | Path, fill: str | None = None) -> Findings:
    """An analysis folder's tables, with rankings, agreement and truth derived (fill: default blur if
    present, else the first one)."""
    folder = Path(folder)
    saliency, occlusion = _read(folder, "saliency.csv"), _read(folder, "occlusion.csv")
    if not saliency and not occlusion:
        raise DataNotFoundError(
            f"{folder}: no saliency.csv or occlusion.csv; run `facexai saliency --out {folder}` "
            f"and/or `facexai occlude --out {folder}` first"
        )
    prov_path = folder / "provenance.json"
    prov = json.loads(prov_path.read_text()) if prov_path.is_file() else {}
    ev_path = folder / "evidence.json"
    evidence = json.loads(ev_path.read_text()) if ev_path.is_file() else None
    fills = list(dict.fromkeys(r["fill"] for r in occlusion))
    if fill is None:
        fill = "blur" if "blur" in fills else (fills[0] if fills else None)
    elif fill not in fills:
        raise DataNotFoundError(f"{folder / 'occlusion.csv'}: no rows with fill {fill!r}; it has {fills}")
    f = Findings(folder, saliency, occlusion, _read(folder, "sanity.csv"), prov, fill, evidence is not None)
    f.scores = method_scores(saliency, occlusion)
    f.ranking, f.agreement = ranking_rows(f.scores), agreement_rows(f.scores)
    # synthetic faces know their evidence; for real faces, the FACS prototypes are the expectation
    f.truth = truth_rows(f.scores, evidence if f.known else facs.evidence(), saliency)
    return f


def draw_figures(f: Findings, out: Path) -> list[Path]:
    """Heat tables of map relevance and occlusion drop, and occlusion bar charts, drawn from the tables."""
    pictures = []
    for method in dict.fromkeys(r["method"] for r in f.saliency):
        pictures.append(
            figures.region_heatmap(f.saliency, out / f"relevance_{method}.png", MAP_MEASURE, method=method,
                                   title=f"{label(method)}: region relevance (1 = no preference)")
        )  # fmt: skip
    for fill in dict.fromkeys(r["fill"] for r in f.occlusion):
        pictures.append(
            figures.region_heatmap(f.occlusion, out / f"occlusion_{fill}_heat.png", OCC_MEASURE, method="occlusion",
                                   fill=fill, title=f"occlusion ({fill} fill): drop in the emotion's probability")
        )  # fmt: skip
        if any(r["measure"] == "accuracy_drop" and r["fill"] == fill for r in f.occlusion):
            pictures.append(
                figures.occlusion_bars(f.occlusion, out / f"occlusion_{fill}_bars.png", "accuracy_drop", fill=fill,
                                       title=f"occlusion ({fill} fill): accuracy drop per region, 95% CI")
            )  # fmt: skip
    return pictures


def _intro(f: Findings) -> list[str]:
    analyses = f.provenance.get("analyses", {})
    source = next(iter(analyses.values()), {})
    lines = ["# Which face regions drive each emotion", ""]
    if source:
        lines += [
            f"Model run `{source.get('run')}`, data set `{source.get('data')}`, split "
            f"`{source.get('config', {}).get('split')}`, {source.get('n_images')} images; landmarks: "
            f"{source.get('landmarks', {}).get('provider')}. Estimates are means over the images of each true "
            "emotion with 95% bootstrap intervals; every number comes from the CSV tables beside this file.",
            "",
        ]
    half = [name for name, a in analyses.items() if a.get("config", {}).get("bf16")]
    if half:
        lines += [
            f"Precision: {' and '.join(half)} ran under bf16 autocast (`--bf16`), the rest in fp32. bf16 is "
            "faster and less exact: trust the rankings more than the last digits.",
            "",
        ]
    lines += ["## Headline per emotion", ""]
    target = analyses.get("occlusion", analyses.get("saliency", {})).get("config", {}).get("target", "pred")
    return lines + [f"- {headline(e, f.scores, f.occlusion, f.fill, target)}" for e in f.emotions] + [""]


def _rankings(f: Findings) -> list[str]:
    lines = ["## Region rankings", "", "The three most important regions per emotion under each method "
             "(maps: relevance; occlusion: probability drop); every rank is in `ranking.csv`.", ""]  # fmt: skip
    methods, emotions = list(f.scores), f.emotions
    top3 = {
        (m, e): " > ".join(
            r["region"] for r in f.ranking
            if (r["method"], r["emotion"]) == (m, e) and r["rank"] != "" and r["rank"] <= 3
        )
        or "n/a"
        for m in methods
        for e in emotions
    }  # fmt: skip
    return lines + [_md_table(["emotion", *map(label, methods)], [[e, *(top3[m, e] for m in methods)]
                                                                   for e in emotions]), ""]  # fmt: skip


def _agreement(f: Findings) -> list[str]:
    if not f.agreement:
        return []
    lines = ["## Do the methods agree?", "",
             "Spearman's rho between the methods' region scores, per emotion (1 = same ranking, 0 = unrelated); "
             "every pair of methods is in `agreement.csv`.", ""]  # fmt: skip
    # the three families (a CAM, integrated gradients, occlusion); every pair is in agreement.csv
    cam = next((m for m in ("gradcam", "hirescam", "gradcampp") if m in f.scores), None)
    main = [m for m in (cam, "ig", f"occlusion/{f.fill}") if m in f.scores]
    pairs = [(a, b) for a, b in combinations(main, 2)] or list(
        dict.fromkeys((r["method_a"], r["method_b"]) for r in f.agreement)
    )
    cell = {(r["emotion"], r["method_a"], r["method_b"]): r["spearman"] for r in f.agreement}
    cell |= {(e, b, a): v for (e, a, b), v in list(cell.items())}  # a pair may be stored either way round
    body = [
        [f"{label(a)} vs {label(b)}", *(_fmt(cell.get((e, a, b), math.nan)) for e in f.emotions)] for a, b in pairs
    ]
    return lines + [_md_table(["methods", *f.emotions], body), ""]


def _truth(f: Findings) -> list[str]:
    if not f.truth:
        return []
    lines = (
        ["## Against the known evidence (synthetic faces)", "",
         "Each emotion's evidence regions are known by construction. "]
        if f.known else
        ["## Compared with the FACS prototypes", "",
         "The regions moved by each emotion's prototype action units (the FACS table in `facexai/facs.py`; "
         "neutral: the regions most emotions move). Real faces need not use all of them, so this is an "
         "expectation, not ground truth. "]
    )  # fmt: skip
    lines[-1] += (
        "*Top region* counts the emotions "
        "whose highest-scored region is evidence (chance: the expected count for a region drawn at "
        "random); *AUC* is the probability that an evidence region outscores a non-evidence region "
        "(0.5 = chance), averaged over emotions."
    )
    body = []
    for method in dict.fromkeys(r["method"] for r in f.truth):
        rs = [r for r in f.truth if r["method"] == method and r["top_region"]]  # emotions with images
        aucs = [r["evidence_auc"] for r in rs if math.isfinite(r["evidence_auc"])]
        body.append([
            label(method), f"{I.recovered(rs)}/{len(rs)}", _fmt(sum(r["chance_top"] for r in rs), 1),
            _fmt(sum(aucs) / len(aucs) if aucs else math.nan),
            ", ".join(r["emotion"] for r in rs if not r["top_is_evidence"]) or "none",
        ])  # fmt: skip
    return lines + ["", _md_table(["method", "top region is evidence", "chance", "mean AUC", "missed"], body), ""]


def _sanity(f: Findings) -> list[str]:
    if not f.sanity:
        return []
    lines = ["## Sanity check (model randomisation)", "",
             "Maps of a copy of the model whose layers are re-initialised from the top down, compared with the "
             "trained model's maps (mean per-image |Spearman|; n/a: the random model's maps are constant). A "
             "method whose maps still match once every layer is random explains the input, not the model, "
             "and is flagged.", ""]  # fmt: skip
    body = []
    for method in dict.fromkeys(r["method"] for r in f.sanity):
        rs = [r for r in f.sanity if r["method"] == method]
        body.append([
            label(method), _fmt(_float(rs[0]["spearman_abs"])), _fmt(_float(rs[-1]["spearman_abs"])), len(rs),
            "**flagged**" if rs[-1]["flagged"] == "True" else "passes",
        ])  # fmt: skip
    return lines + [_md_table(["method", "after top layer", "all layers random", "steps", "verdict"], body), ""]


def _contents(f: Findings, pictures: list[Path]) -> list[str]:
    grids = [f.folder / f"saliency_{m}.png" for m in dict.fromkeys(r["method"] for r in f.saliency)]
    shown = [f.folder / f"gallery_{e}.png" for e in f.emotions]  # written by saliency, where asked for
    lines = ["## Figures", ""]
    for p in [*(g for g in grids if g.is_file()), *(g for g in shown if g.is_file()), *pictures]:
        lines += [f"![{p.stem}]({p.name})", ""]
    tables = [n for n in ("saliency.csv", "occlusion.csv", "sanity.csv") if (f.folder / n).is_file()]
    tables += ["ranking.csv", "agreement.csv"] + ([f.truth_csv] if f.truth else [])
    return lines + ["## Tables", "", *(f"- [`{n}`]({n})" for n in tables), ""]


def write_report(folder: str | Path, fill: str | None = None, html: bool = False) -> Path:
    """Derive ranking.csv, agreement.csv, truth.csv (or facs.csv) and figures from an analysis folder and
    write its report.md, whole or not at all (a failure part way leaves the previous report as it was).

    fill: the occlusion fill the headlines use (default: blur if present, else the first one); html: also
    report.html, one self-contained page.
    """
    started = now()
    f = read_findings(folder, fill)
    other = "facs.csv" if f.known else "truth.csv"  # never leave a stale table from an earlier report beside this
    with staged(f.folder, remove=[other] + ([] if f.truth else [f.truth_csv])) as stage:
        pictures = draw_figures(f, stage)
        lines = [*_intro(f), *_rankings(f), *_agreement(f), *_truth(f), *_sanity(f), *_contents(f, pictures)]
        write_csv(stage / "ranking.csv", f.ranking)
        write_csv(stage / "agreement.csv", f.agreement, ["emotion", "method_a", "method_b", "regions", "spearman",
                                                         "kendall"])  # fmt: skip
        if f.truth:
            write_csv(stage / f.truth_csv, f.truth)
        atomic_write_text(stage / "report.md", "\n".join(lines))
        derived = ["ranking.csv", "agreement.csv"] + ([f.truth_csv] if f.truth else [])
        written = ["report.md", *(p.name for p in pictures), *derived]
        prov = dict(f.provenance)
        prov.setdefault("analyses", {})["report"] = provenance(
            {"fill": f.fill}, "cpu", started, git_commit(), outputs=written
        )
        write_json(stage / "provenance.json", prov)
    if html:
        write_html(f.folder)
    return f.folder / "report.md"


def recovery_summary(folder: str | Path) -> list[dict[str, Any]]:
    """Per method in truth.csv: emotions recovered (top region is evidence), of how many, and mean evidence AUC."""
    rows = _read(Path(folder), "truth.csv")
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        rs = [r for r in rows if r["method"] == method and r["top_region"]]
        aucs = [_float(r["evidence_auc"]) for r in rs if math.isfinite(_float(r["evidence_auc"]))]
        out.append({
            "method": method, "recovered": sum(r["top_is_evidence"] == "True" for r in rs), "of": len(rs),
            "chance": sum(_float(r["chance_top"]) for r in rs),  # expected count for a region drawn at random
            "mean_auc": sum(aucs) / len(aucs) if aucs else math.nan,
        })  # fmt: skip
    return out
