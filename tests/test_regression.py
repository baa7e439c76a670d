"""No silent change: the analysis layer reproduces the tidy rows recorded before its redesign.

tests/fixtures/regression/ holds the saliency and occlusion rows of 32 test faces for a small committed
synthetic model and for the FER+ 100x100 seed-1 model, recorded at commit ec5e91f with that commit's
API (`make.py`). Pinned: template landmarks, one thread, fp32, no sanity check, 200 bootstrap
replicates, 4 integrated-gradients steps. The FER+ model is checked with the blur fill only (the
fixture holds all three; the fills share every line of code but the reference, which
tests/test_explain_methods.py checks). Values must agree to 1e-5 (relative; float sums differ
slightly across CPUs) and every ranking of regions must be the same.
"""

import math
from collections import defaultdict
from pathlib import Path

import pytest
import torch
from conftest import shared_data

from facexai.explain.analysis import ExplainConfig, SubjectConfig, load_subject, occlusion, saliency
from facexai.io.files import read_csv

FIXTURES = Path(__file__).parent / "fixtures"
RESULTS = Path(__file__).resolve().parents[1] / "results"
KEY = ("group", "emotion", "region", "method", "fill", "measure")


def rows_now(run: Path, data_root: str | None, fills=("mean", "blur", "noise")) -> dict[str, list[dict]]:
    torch.set_num_threads(1)
    subject = load_subject(run, SubjectConfig(limit=32, landmarks="template", device="cpu"), data_root=data_root)
    cfg = ExplainConfig(fills=fills, ig_steps=4, sanity_n=0, n_boot=200, progress=False)
    return {"saliency": saliency(subject, cfg)[0], "occlusion": occlusion(subject, cfg)[0]}


def _value(v) -> float:
    return float(v) if v not in ("", None) else math.nan


def _rounded(v: float) -> float:
    return float(f"{v:.6g}")  # as the fixture's CSV stores it


def assert_same_rows(recorded: list[dict], now: list[dict]) -> None:
    assert len(recorded) == len(now)
    old = {tuple(r[k] for k in KEY): r for r in recorded}
    new = {tuple(str(r[k]) for k in KEY): r for r in now}
    assert old.keys() == new.keys()
    ranks = defaultdict(lambda: ([], []))
    for key, r in new.items():
        for col in ("estimate", "ci_low", "ci_high"):
            a, b = _value(old[key][col]), float(r[col])
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-5, abs=1e-9), (key, col, a, b)
        assert int(old[key]["n"]) == r["n"], key
        group = tuple(key[k] for k in (0, 1, 3, 4, 5))  # all but the region
        ranks[group][0].append((-_value(old[key]["estimate"]), key[2]))
        ranks[group][1].append((-_rounded(float(r["estimate"])), key[2]))
    for group, (a, b) in ranks.items():
        order = [region for _, region in sorted((v if v == v else math.inf, reg) for v, reg in a)]
        again = [region for _, region in sorted((v if v == v else math.inf, reg) for v, reg in b)]
        assert order == again, group


def test_the_synthetic_model_s_rows_are_unchanged():
    now = rows_now(FIXTURES / "synthetic-small", None)
    for name, rows in now.items():
        assert_same_rows(read_csv(FIXTURES / "regression" / f"synthetic-{name}.csv"), rows)


def test_the_ferplus_model_s_rows_are_unchanged(monkeypatch, real_data_cache):
    root = shared_data("ferplus")
    monkeypatch.setenv("FACEXAI_CACHE", str(real_data_cache))
    now = rows_now(RESULTS / "ferplus-seed-b" / "s1", str(root), fills=("blur",))
    for name, rows in now.items():
        recorded = read_csv(FIXTURES / "regression" / f"ferplus-s1-{name}.csv")
        assert_same_rows([r for r in recorded if r["fill"] in ("", "blur")], rows)
