import json
import re

import torch
from formats import random_image, votes, write_ferplus_folders, write_rafdb_tree
from typer.testing import CliRunner

from facexai.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def tiny_ferplus(root):
    folders = {"FER2013Train": [], "FER2013Valid": [], "FER2013Test": []}
    for i in range(12):
        folder = list(folders)[i % 3]
        v = votes(NF=10) if i == 0 else votes(happiness=6, neutral=4) if i % 2 else votes(neutral=7, fear=3)
        folders[folder].append((f"fer{i:07d}.png", v, random_image(i)))
    return write_ferplus_folders(root, folders)


def tiny_rafdb(root, n=70):
    names = [(f"{'train' if i < 56 else 'test'}_{i:05d}.jpg", 1 + i % 7) for i in range(n)]
    return write_rafdb_tree(root, names)


def test_list_names_models_and_data_sets():
    result = invoke("list")
    assert result.exit_code == 0
    assert "seed_vgg" in result.stdout and "resnet18" in result.stdout and "ferplus" in result.stdout


def test_data_check_prints_counts_and_what_was_dropped(tmp_path):
    result = invoke("data", "check", "ferplus", "--data-root", tiny_ferplus(tmp_path))
    assert result.exit_code == 0, result.output
    assert "found before dropping: train 4, val 4, test 4" in result.stdout
    assert "1 (no votes for the 7 classes)" in result.stdout


def test_data_check_counts_held_out_faces_whose_twin_is_in_train(tmp_path):
    folders = {
        "FER2013Train": [(f"fer{i:07d}.png", votes(neutral=8), random_image(i)) for i in range(3)],
        "FER2013Valid": [("fer0000010.png", votes(neutral=8), random_image(10))],
        "FER2013Test": [(f"fer{i:07d}.png", votes(neutral=8), random_image(i % 2)) for i in (20, 21)],
    }
    result = invoke("data", "check", "ferplus", "--data-root", write_ferplus_folders(tmp_path, folders))
    assert result.exit_code == 0, result.output
    assert "pixel-identical twin in train: val 0 of 1, test 2 of 2" in result.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    result = invoke("data", "check", "ferplus", "--data-root", tmp_path / "nowhere")
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "FER+ data root not found" in result.stderr
    assert "Traceback" not in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text("epochz = 1\n")
    result = invoke("train", "synthetic", "--config", bad)
    assert result.exit_code == 2 and "unknown setting" in result.stderr
    result = invoke("evaluate", tmp_path)
    assert result.exit_code == 2 and "not a run folder" in result.stderr


def test_unknown_data_set_is_a_usage_error():
    result = invoke("train", "affectnet")
    assert result.exit_code == 2 and "affectnet" in result.output


def test_train_then_evaluate_rafdb_layout_end_to_end(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text('model = "seed_vgg"\nepochs = 1\nbatch_size = 8\ninput_size = 28\n[data]\ndataset = "rafdb"\n')
    result = invoke(
        "train",
        "rafdb",
        "--data-root",
        tiny_rafdb(tmp_path / "raf"),
        "--config",
        config,
        "--out",
        tmp_path / "runs",
        "--no-progress",
        "--seed",
        3,
    )
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("rafdb-seed_vgg-s3-")
    assert json.loads((run / "config.json").read_text())["data"]["root"] == str(tmp_path / "raf")
    assert json.loads((run / "metrics.json").read_text())["n"] == 14
    result = invoke("evaluate", run, "--split", "val")
    assert result.exit_code == 0, result.output
    assert json.loads((run / "metrics-val.json").read_text())["split"] == "val"
    result = invoke("evaluate", run, "--label-mode", "majority")  # votes exist only in FER+
    assert result.exit_code == 2 and "--label-mode applies to ferplus only; rafdb" in result.stderr
    assert not (run / "metrics-test-majority.json").exists()


def test_a_data_option_the_data_set_does_not_read_is_a_one_line_error(tmp_path):
    for args in (
        ("train", "fer2013", "--label-mode", "majority"),  # votes exist only in FER+
        ("train", "rafdb", "--classes", "8"),
        ("data", "check", "ferplus", "--split", "seed-a"),  # only FER2013 is re-split
    ):
        result = invoke(*args, "--data-root", tmp_path / "nowhere")
        assert result.exit_code == 2, args
        assert f"{args[-2]} applies to" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir()) and not (tmp_path / "runs").exists()


def test_resume_refuses_options_it_would_ignore_and_another_data_set(tmp_path):
    partial = tmp_path / ".ferplus-seed_vgg-s0-x.partial"
    partial.mkdir()
    (partial / "config.json").write_text(json.dumps({"data": {"dataset": "ferplus"}}))
    result = invoke("train", "ferplus", "--resume", partial, "--epochs", 3, "--seed", 1)
    assert result.exit_code == 2 and "saved settings; drop --epochs, --seed" in result.stderr
    result = invoke("train", "fer2013", "--resume", partial)
    assert result.exit_code == 2 and "is a ferplus run, not fer2013" in result.stderr
    result = invoke("train", "ferplus", "--resume", partial, "--threads", 1)  # accepted; then: nothing to resume
    assert result.exit_code == 2 and "state.pt not found" in result.stderr


def test_evaluate_scores_a_soft_label_run_on_the_majority_vote_test_faces(tmp_path):
    clear, split = votes(happiness=8, neutral=2), votes(happiness=5, surprise=5)  # split: no majority
    folders = {
        "FER2013Train": [(f"fer{i:07d}.png", clear, random_image(i)) for i in range(6)],
        "FER2013Valid": [(f"fer{i:07d}.png", clear, random_image(i)) for i in range(6, 8)],
        "FER2013Test": [(f"fer{i:07d}.png", clear if i < 11 else split, random_image(i)) for i in range(8, 13)],
    }
    config = tmp_path / "tiny.toml"
    config.write_text('epochs = 1\nbatch_size = 4\ninput_size = 28\n[data]\ndataset = "ferplus"\nlabel_mode = "soft"\n')
    root = write_ferplus_folders(tmp_path / "fer", folders)
    args = ("--data-root", root, "--config", config, "--out", tmp_path / "runs", "--no-progress")
    assert invoke("train", "ferplus", *args).exit_code == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "metrics.json").read_text())["n"] == 5  # soft: every voted test face
    result = invoke("evaluate", run, "--label-mode", "majority")
    assert result.exit_code == 0, result.output
    majority = json.loads((run / "metrics-test-majority.json").read_text())
    assert majority["n"] == 3 and majority["label_mode"] == "majority"
    assert majority["provenance"]["config"]["label_mode"] == "majority" and majority["provenance"]["finished"]


def test_saliency_and_occlude_write_tidy_tables_with_provenance(tmp_path):
    config = tmp_path / "syn.toml"
    config.write_text(
        'epochs = 1\nbatch_size = 16\ninput_size = 48\nin_channels = 1\n[data]\ndataset = "synthetic"\n'
        "synthetic_n = 140\n"
    )
    result = invoke("train", "synthetic", "--config", config, "--out", tmp_path / "runs", "--no-progress")
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs").iterdir()
    out = tmp_path / "findings"
    result = invoke(
        "saliency", "--run", run, "--out", out, "--methods", "gradcam,ig", "--limit", 8,
        "--ig-steps", 4, "--sanity-n", 4, "--batch-size", 3, "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = (out / "saliency.csv").read_text().splitlines()
    assert rows[0] == "group,emotion,region,method,fill,measure,estimate,ci_low,ci_high,n"
    assert len(rows) == 1 + 2 * 2 * 2 * 7 * 8  # (true, pred) x methods x (relevance, mass) x emotions x regions
    sanity = (out / "sanity.csv").read_text().splitlines()
    assert sanity[0] == "method,step,layer,spearman,spearman_abs,ssim,flagged" and len(sanity) > 2
    assert (out / "saliency_gradcam.png").is_file() and (out / "saliency_ig.png").is_file()
    assert (out / "evidence.json").is_file()  # synthetic faces know their evidence regions
    threads = torch.get_num_threads()
    try:
        result = invoke(
            "occlude", "--run", run, "--out", out, "--region", "mouth", "--limit", 8, "--threads", 1, "--bf16",
            "--no-progress",
        )  # fmt: skip
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    rows = (out / "occlusion.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 3 * 7  # (true, pred) x 3 measures x emotions, one region
    analyses = json.loads((out / "provenance.json").read_text())["analyses"]
    assert set(analyses) == {"saliency", "occlusion"} and analyses["occlusion"]["config"]["threads"] == 1
    assert analyses["occlusion"]["config"]["bf16"] and not analyses["saliency"]["config"]["bf16"]
    assert analyses["saliency"]["config"]["batch_size"] == 3 and analyses["occlusion"]["config"]["batch_size"] == 16
    result = invoke("report", out, "--html")
    assert result.exit_code == 0, result.output
    assert "top is evidence" in result.output and "chance" in result.output  # the recovery table
    page = (out / "report.html").read_text()
    images = re.findall(r'<img src="([^"]*)"', page)
    assert images and all(src.startswith("data:image/png;base64,") for src in images)  # self-contained
    assert all(f"gallery_{e}" in page for e in ("neutral", "happiness", "fear"))  # every emotion's gallery
    assert all(f"<strong>{e}</strong>" in page for e in ("neutral", "happiness", "surprise", "sadness", "anger",
                                                         "disgust", "fear"))  # fmt: skip
    report = (out / "report.md").read_text()
    assert report.count("\n- **") == 7  # one headline per emotion
    assert "Precision: occlusion ran under bf16 autocast" in report
    result = invoke("occlude", "--run", run, "--out", out, "--region", "ears")
    assert result.exit_code == 2 and "unknown region" in result.stderr


def test_report_of_an_empty_folder_is_one_line_and_exit_2(tmp_path):
    result = invoke("report", tmp_path)
    assert result.exit_code == 2 and "no saliency.csv or occlusion.csv" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_regions_show_draws_masks_over_synthetic_faces(tmp_path):
    png = tmp_path / "regions.png"
    result = invoke("regions", "show", "synthetic", "--n", 4, "--out", png)
    assert result.exit_code == 0, result.output
    assert "landmarks: dataset" in result.output and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_data_standin_writes_a_rafdb_tree_that_data_check_reads(tmp_path):
    labels = tmp_path / "list_patition_label.txt"
    labels.write_text("".join(f"{s}_{i:05d}.jpg {1 + i % 7}\n" for s in ("train", "test") for i in range(1, 15)))
    tree = tmp_path / "raf"
    result = invoke("data", "standin", labels, "--out", tree, "--no-progress")
    assert result.exit_code == 0, result.output
    assert (tree / "STANDIN.md").is_file()
    result = invoke("data", "check", "rafdb", "--data-root", tree)
    assert result.exit_code == 0, result.output
    result = invoke("data", "standin", labels, "--out", tree, "--no-progress")
    assert result.exit_code == 2 and "already exists" in result.stderr


def test_analyses_default_to_a_folder_under_runs_and_never_scatter_files_into_a_full_one(tmp_path, monkeypatch):
    from conftest import SYNTHETIC_RUN

    monkeypatch.chdir(tmp_path)
    args = ("occlude", "--run", SYNTHETIC_RUN, "--region", "Mouth", "--limit", 4, "--no-progress")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "findings" / "synthetic-small" / "occlusion.csv").is_file()
    tracked = tmp_path / "results"
    tracked.mkdir()
    (tracked / "README.md").write_text("committed")
    result = invoke(*args, "--out", tracked)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tracked.iterdir()) == ["README.md", "synthetic-small-findings"]
    assert (tracked / "synthetic-small-findings" / "occlusion.csv").is_file()
