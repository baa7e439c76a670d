"""Figures of findings: each writes one whole PNG at the path and nothing else, from dict or CSV rows."""

import math
import warnings

import numpy as np
import pytest
import torch

from facexai.io.figures import attribution_grid, occlusion_bars, region_heatmap
from facexai.io.files import read_csv, write_csv
from facexai.report.findings import FINDING_COLUMNS

PNG = b"\x89PNG\r\n\x1a\n"
EMOTIONS = ("happiness", "sadness", "anger")
REGIONS = ("eyes", "mouth", "nose")


def _rows(method, measure, fill="", groups=("true", "pred")):
    """Tidy findings rows with a NaN cell, as the analysis writes them."""
    rows = []
    for group in groups:
        for g, emotion in enumerate(EMOTIONS):
            for r, region in enumerate(REGIONS):
                est = math.nan if (g, r) == (2, 2) else 0.1 * (g - r) + (1.0 if measure == "relevance" else 0.0)
                rows.append(
                    dict(
                        group=group,
                        emotion=emotion,
                        region=region,
                        method=method,
                        fill=fill,
                        measure=measure,
                        estimate=est,
                        ci_low=est - 0.05,
                        ci_high=est + 0.08,
                        n=10 + g,
                    )
                )
    return rows


def _findings():
    return (
        _rows("gradcam", "relevance")
        + _rows("ig", "relevance")
        + _rows("occlusion", "accuracy_drop", "mean")
        + _rows("occlusion", "probability_drop", "mean")
    )


def _is_only_png(path, folder):
    assert path.read_bytes().startswith(PNG) and path.stat().st_size > 1000
    assert sorted(p.name for p in folder.iterdir()) == [path.name]  # no temp files left behind


def test_attribution_grid_writes_a_png(tmp_path):
    faces = torch.rand(3, 1, 48, 48) * 255
    maps = torch.rand(3, 48, 48)
    out = attribution_grid(faces, maps, [f"{e} (n=5)" for e in EMOTIONS], tmp_path / "grid.png", title="gradcam")
    assert out == tmp_path / "grid.png"
    _is_only_png(out, tmp_path)


def test_attribution_grid_upsamples_small_maps_and_takes_rgb_arrays(tmp_path):
    faces = np.random.default_rng(0).uniform(0, 255, (2, 3, 64, 64))
    maps = np.random.default_rng(1).uniform(0, 1, (2, 7, 7))
    _is_only_png(attribution_grid(faces, maps, ["a", "b"], tmp_path / "grid.png"), tmp_path)


def test_attribution_grid_accepts_all_zero_maps_without_warnings(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = attribution_grid(torch.zeros(2, 1, 32, 32), torch.zeros(2, 8, 8), ["a", "b"], tmp_path / "zero.png")
    _is_only_png(out, tmp_path)


def test_attribution_grid_rejects_mismatched_counts(tmp_path):
    with pytest.raises(ValueError, match="titles"):
        attribution_grid(torch.zeros(2, 1, 8, 8), torch.zeros(2, 8, 8), ["a"], tmp_path / "bad.png")
    assert list(tmp_path.iterdir()) == []


def test_region_heatmap_writes_a_png_for_one_method(tmp_path):
    out = region_heatmap(_findings(), tmp_path / "heat.png", "relevance", title="relevance", method="gradcam")
    assert out == tmp_path / "heat.png"
    _is_only_png(out, tmp_path)


def test_region_heatmap_works_from_csv_rows(tmp_path):
    write_csv(tmp_path / "findings.csv", _findings(), FINDING_COLUMNS)
    rows = read_csv(tmp_path / "findings.csv")
    assert rows[0]["estimate"] == "1" and any(r["estimate"] == "nan" for r in rows)  # all strings, NaN included
    (tmp_path / "figs").mkdir()
    out = region_heatmap(rows, tmp_path / "figs" / "heat.png", "accuracy_drop", group="pred", fill="mean")
    _is_only_png(out, tmp_path / "figs")


def test_region_heatmap_raises_naming_the_filter_when_nothing_matches(tmp_path):
    with pytest.raises(ValueError, match="no rows match.*'relevance'.*'lime'"):
        region_heatmap(_findings(), tmp_path / "heat.png", "relevance", method="lime")
    assert list(tmp_path.iterdir()) == []


def test_region_heatmap_refuses_to_mix_methods(tmp_path):
    with pytest.raises(ValueError, match="choose a method"):
        region_heatmap(_findings(), tmp_path / "heat.png", "relevance")


def test_occlusion_bars_writes_a_png(tmp_path):
    out = occlusion_bars(_findings(), tmp_path / "bars.png", title="occlusion")
    assert out == tmp_path / "bars.png"
    _is_only_png(out, tmp_path)


def test_occlusion_bars_works_from_csv_rows_with_many_emotions(tmp_path):
    rows = _findings()
    rows += [dict(r, emotion=f"{r['emotion']}2") for r in rows] + [dict(r, emotion="x") for r in rows[:9]]
    write_csv(tmp_path / "findings.csv", rows, FINDING_COLUMNS)
    rows = read_csv(tmp_path / "findings.csv")
    (tmp_path / "figs").mkdir()
    out = occlusion_bars(rows, tmp_path / "figs" / "bars.png", measure="probability_drop", group="pred")
    _is_only_png(out, tmp_path / "figs")


def test_occlusion_bars_asks_for_a_fill_when_there_are_several(tmp_path):
    rows = _findings() + _rows("occlusion", "accuracy_drop", "blur")
    with pytest.raises(ValueError, match="several fills.*blur"):
        occlusion_bars(rows, tmp_path / "bars.png")
    assert list(tmp_path.iterdir()) == []
    _is_only_png(occlusion_bars(rows, tmp_path / "bars.png", fill="blur"), tmp_path)


def test_occlusion_bars_raises_when_nothing_matches(tmp_path):
    with pytest.raises(ValueError, match="no rows match"):
        occlusion_bars(_rows("gradcam", "relevance"), tmp_path / "bars.png")
