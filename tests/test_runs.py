import dataclasses
import json
import math

import pytest
from typer.testing import CliRunner

from facexai.cli import app
from facexai.config import TrainConfig, to_dict
from facexai.errors import RunNotFoundError
from facexai.io.files import read_csv, write_csv
from facexai.report.runs import read_run, reversals, seed_summary

runner = CliRunner()


def fake_run(folder, accuracy, seed=0, threads=None, lr=1e-3, last=None):
    """A finished run folder written by hand: the numbers a comparison must reproduce are known."""
    folder.mkdir(parents=True)
    cfg = dataclasses.replace(TrainConfig(epochs=3), seed=seed, threads=threads, lr=lr)
    metrics = {
        "accuracy": accuracy,
        "loss": 1.0 - accuracy,
        "mean_class_recall": accuracy - 0.1,
        "val_accuracy": accuracy + 0.01,
        "epoch": 2,
        "best_epoch": 2,
        "epochs_run": 3,
    }
    metrics |= {"classes": ["neutral", "fear"], "confusion_matrix": [[9, 1], [3, 1]]}
    if last is not None:
        metrics["last_epoch"] = {"epoch": 3, "accuracy": last}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "config.json").write_text(json.dumps(to_dict(cfg)))
    (folder / "provenance.json").write_text(json.dumps({"train_seconds": 12.5}))
    history = [{"epoch": e, "lr": lr, "val_loss": 2.0 / e, "val_acc": accuracy * e / 3} for e in (1, 2, 3)]
    write_csv(folder / "history.csv", history)
    return folder


def test_runs_that_differ_only_in_seed_and_threads_are_one_recipe_with_mean_and_sample_std(tmp_path):
    rows = [
        read_run(fake_run(tmp_path / "a", 0.80, seed=0, threads=2)),
        read_run(fake_run(tmp_path / "b", 0.82, seed=1, threads=1)),
        read_run(fake_run(tmp_path / "c", 0.84, seed=2)),
        read_run(fake_run(tmp_path / "d", 0.50, lr=1e-2)),  # another recipe
    ]
    same, other = seed_summary(rows)
    assert same["n"] == 3 and same["seeds"] == "0 1 2" and same["runs"] == "a b c"
    assert same["test_accuracy_mean"] == pytest.approx(0.82)
    assert same["test_accuracy_std"] == pytest.approx(0.02)  # sample std (n - 1) of 0.80, 0.82, 0.84
    assert same["test_accuracy_min"] == 0.80 and same["test_accuracy_max"] == 0.84
    assert same["val_accuracy_mean"] == pytest.approx(0.83)
    assert other["n"] == 1 and math.isnan(other["test_accuracy_std"])


def test_a_run_row_carries_the_last_epoch_model_where_the_best_was_restored(tmp_path):
    row = read_run(fake_run(tmp_path / "a", 0.80, last=0.78), label="exp 2")
    assert row["label"] == "exp 2" and row["test_accuracy"] == 0.80 and row["last_epoch_test_accuracy"] == 0.78
    assert {(c["true"], c["predicted"]): c["share"] for c in row["confusions"]} == {
        ("neutral", "neutral"): 0.9,
        ("neutral", "fear"): 0.1,
        ("fear", "neutral"): 0.75,  # 3 of 4 fear faces read as neutral
        ("fear", "fear"): 0.25,
    }
    assert row["train_seconds"] == 12.5 and [r["epoch"] for r in row["history"]] == ["1", "2", "3"]


def test_a_folder_that_is_not_a_finished_run_is_a_one_line_error(tmp_path):
    (tmp_path / "half").mkdir()
    with pytest.raises(RunNotFoundError, match="half: not a finished run folder"):
        read_run(tmp_path / "half")


def test_a_metrics_file_without_the_scores_is_a_one_line_error(tmp_path):
    run = fake_run(tmp_path / "a", 0.80)
    (run / "metrics.json").write_text(json.dumps({"accuracy": 0.8}))
    with pytest.raises(RunNotFoundError, match="metrics.json: missing loss, mean_class_recall"):
        read_run(run)


def test_compare_writes_tables_and_curves_and_says_mean_and_std(tmp_path):
    a, b = fake_run(tmp_path / "a", 0.80), fake_run(tmp_path / "b", 0.84, seed=1)
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", str(a), str(b), "--out", str(out), "--label", "s0", "--label", "s1"])
    assert result.exit_code == 0, result.output
    assert "s0 s1: test 0.8200 +- 0.0283 (n 2)" in result.stdout
    assert {p.name for p in out.iterdir()} == {
        "runs.csv",
        "seeds.csv",
        "confusions.csv",
        "histories.png",
        "provenance.json",
    }
    assert [r["label"] for r in read_csv(out / "runs.csv")] == ["s0", "s1"]
    assert read_csv(out / "seeds.csv")[0]["test_accuracy_mean"] == "0.82"


def test_compare_refuses_a_missing_run_and_writes_nothing(tmp_path):
    a = fake_run(tmp_path / "a", 0.80)
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", str(a), str(tmp_path / "nope"), "--out", str(out)])
    assert result.exit_code == 2
    assert "nope: not a finished run folder (metrics.json not found)" in result.output
    assert not out.exists()


def test_reversals_count_the_turns_of_a_curve():
    assert reversals([3.0, 2.0, 1.0, 0.5]) == 0  # falls throughout
    assert reversals([3.0, 2.0, 2.5, 1.0, 1.0, 1.5]) == 3  # down, up, down, (flat), up
    assert reversals([1.0]) == 0


def test_a_run_written_before_a_setting_existed_is_the_same_recipe_as_one_with_its_default():
    from facexai.report.runs import recipe_key

    new = to_dict(TrainConfig())
    old = {k: v for k, v in new.items() if k not in ("ema_decay", "schedule", "tta_flip")}
    assert recipe_key(old) == recipe_key(new)
    assert recipe_key(old) != recipe_key({**new, "ema_decay": 0.99})
