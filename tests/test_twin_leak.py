"""experiments/twin_leak.py: test faces split by whether a pixel-identical copy was trained on."""

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest
from toy import bars

from facexai.config import AugmentConfig, TrainConfig
from facexai.data.base import train_twins
from facexai.runs import evaluate
from facexai.training import fit

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "twin_leak.py"
spec = importlib.util.spec_from_file_location("twin_leak", SCRIPT)
twin_leak = importlib.util.module_from_spec(spec)
spec.loader.exec_module(twin_leak)

FAST = TrainConfig(
    epochs=1, batch_size=8, lr=1e-3, input_size=28, in_channels=1, augment=AugmentConfig(0.0, 0.0, False)
)


def planted():
    """bars() with two test faces overwritten by train images: one of the same class, one not."""
    data = bars()  # split 0,0,0,1,2 repeating: rows 4, 9, 14, ... are test; label = row % 7
    images = data.images.clone()
    images[4] = images[11]  # test label 4 <- train label 4
    images[9] = images[0]  # test label 2 <- train label 0
    return dataclasses.replace(data, images=images)


def test_twinned_and_untwinned_test_faces_partition_the_runs_test_accuracy(tmp_path):
    data = planted()
    run = fit(FAST, out=tmp_path, data=data, progress=False)
    rows = {r["subset"]: r for r in twin_leak.leak_rows(run.path, data, train_twins(data), "cpu")}
    assert [rows[s]["faces"] for s in ("all", "twin_in_train", "no_twin")] == [28, 2, 26]
    assert rows["twin_in_train"]["twin_with_same_label"] == 1
    right = {s: rows[s]["accuracy"] * rows[s]["faces"] for s in rows}
    assert right["all"] == pytest.approx(right["twin_in_train"] + right["no_twin"])
    assert rows["all"]["accuracy"] == pytest.approx(evaluate(run.path, data=data)["accuracy"])


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--device", "gpu0"], "device 'gpu0'"), ([], "is not a finished run folder")],
)
def test_bad_input_is_a_one_line_error_and_writes_nothing(tmp_path, monkeypatch, args, message):
    out = tmp_path / "out"
    argv = ["twin_leak.py", str(tmp_path), "--data-root", str(tmp_path), "--out", str(out), *args]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit, match=message) as e:
        twin_leak.main()
    assert str(e.value).startswith("error: ") and "\n" not in str(e.value)
    assert not out.exists()
