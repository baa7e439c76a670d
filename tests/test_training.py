import dataclasses
import json

import pytest
import torch
from toy import bars

import facexai.training as T
from facexai.config import AugmentConfig, DataConfig, TrainConfig
from facexai.data.augment import Preprocess
from facexai.errors import ClassMismatchError, ConfigError, RunNotFoundError
from facexai.models import create_model
from facexai.runs import Engine, bf16_supported, evaluate, load_checkpoint, predict, resolve_device
from facexai.training import fit, forward_gflop

FAST = TrainConfig(
    epochs=3,
    batch_size=8,
    lr=1e-3,
    input_size=28,
    in_channels=1,
    seed=0,
    augment=AugmentConfig(rotation=0.0, scale=0.0, flip=False),
)
RUN_FILES = {
    "config.json",
    "provenance.json",
    "history.csv",
    "checkpoint.pt",
    "metrics.json",
    "curves.png",
    "confusion.png",
}


def losses(run):
    return [(r["train_loss"], r["val_loss"], r["val_acc"], r["lr"]) for r in run.history]


def test_a_run_learns_the_toy_task_and_writes_a_complete_folder(tmp_path):
    run = fit(FAST, out=tmp_path, data=bars(), progress=False)
    assert {p.name for p in run.path.iterdir()} == RUN_FILES  # state.pt is gone once the run is complete
    assert not list(tmp_path.glob(".*partial"))
    assert run.metrics["accuracy"] >= 0.9 and run.metrics["n"] == 28
    assert sum(run.metrics["counts"].values()) == 28 and len(run.metrics["confusion_matrix"]) == 7
    assert [r["epoch"] for r in run.history] == [1, 2, 3]
    ckpt = torch.load(run.path / "checkpoint.pt", weights_only=True)  # plain tensors and JSON-able metadata
    assert ckpt["meta"]["classes"][0] == "neutral" and ckpt["meta"]["preprocess"]["size"] == 28
    prov = json.loads((run.path / "provenance.json").read_text())
    assert {"command", "config", "git_commit", "versions", "device", "started", "finished"} <= set(prov)
    assert evaluate(run.path, data=bars())["accuracy"] == run.metrics["accuracy"]


def test_every_scoring_pass_is_fp32_unless_asked_and_says_so(tmp_path):
    run = fit(dataclasses.replace(FAST, epochs=1, bf16=True), out=tmp_path, data=bars(), progress=False)
    assert run.metrics["precision"] == "fp32" and run.metrics["memory_format"] == "channels_last"
    prov = json.loads((run.path / "provenance.json").read_text())
    assert prov["bf16"] and prov["test_pass"] == {"precision": "fp32", "memory_format": "channels_last"}
    assert evaluate(run.path, data=bars())["precision"] == "fp32"
    assert evaluate(run.path, data=bars(), bf16=True)["precision"] == "bf16 autocast"


def test_shift_and_erasing_reach_the_training_images(tmp_path):
    plain = fit(dataclasses.replace(FAST, epochs=1), out=tmp_path / "a", data=bars(), progress=False)
    for extra in ({"translate": 0.2}, {"erase": 1.0}):
        augment = dataclasses.replace(FAST.augment, **extra)
        run = fit(dataclasses.replace(FAST, epochs=1, augment=augment), out=tmp_path / "b", data=bars(), progress=False)
        assert losses(run)[0][0] != losses(plain)[0][0], extra  # the first epoch's training loss


def test_same_seed_gives_the_same_history_and_another_seed_does_not(tmp_path):
    a = fit(FAST, out=tmp_path / "a", data=bars(), progress=False)
    b = fit(FAST, out=tmp_path / "b", data=bars(), progress=False)
    c = fit(dataclasses.replace(FAST, seed=1), out=tmp_path / "c", data=bars(), progress=False)
    assert losses(a) == losses(b)
    assert losses(a) != losses(c)


def interrupted_in_epoch_2(cfg, out, monkeypatch, epoch=2):
    """Train `cfg` until a KeyboardInterrupt in `epoch`; return the run's .partial folder."""
    real = T.random_affine
    calls = {"n": 0}

    def crash_in_epoch_2(n, *args):
        calls["n"] += 1
        if calls["n"] > 11 * (epoch - 1) + 1:  # 84 training images / 8 per batch = 11 batches per epoch
            raise KeyboardInterrupt
        return real(n, *args)

    monkeypatch.setattr(T, "random_affine", crash_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, out=out, data=bars(), progress=False)
    monkeypatch.setattr(T, "random_affine", real)
    (partial,) = out.glob(".*.partial")
    return partial


@pytest.mark.parametrize("augment", [AugmentConfig(), AugmentConfig(translate=0.1, erase=0.5)], ids=["plain", "all"])
def test_an_interrupted_run_resumes_to_the_same_history(tmp_path, monkeypatch, augment):
    cfg = dataclasses.replace(FAST, augment=augment)
    whole = fit(cfg, out=tmp_path / "whole", data=bars(), progress=False)
    partial = interrupted_in_epoch_2(cfg, tmp_path / "cut", monkeypatch)
    assert (partial / "state.pt").is_file() and not (partial / "metrics.json").exists()
    resumed = fit(cfg, data=bars(), resume=partial, progress=False)
    assert losses(resumed) == losses(whole)
    assert not partial.exists() and (resumed.path / "metrics.json").is_file()
    segments = json.loads((resumed.path / "provenance.json").read_text())["segments"]
    assert [s["after_epoch"] for s in segments] == [0, 1]  # the start, and the resume after epoch 1
    assert all(s["command"] and s["started"] for s in segments)


def test_a_run_stopped_in_its_first_epoch_resumes_and_says_how(tmp_path, monkeypatch, capsys):
    cfg = dataclasses.replace(FAST, epochs=2, augment=AugmentConfig())
    whole = fit(cfg, out=tmp_path / "whole", data=bars(), progress=False)
    partial = interrupted_in_epoch_2(cfg, tmp_path / "cut", monkeypatch, epoch=1)
    assert f"continue with: facexai train bars --resume {partial}" in capsys.readouterr().err.replace("\n", "")
    resumed = fit(cfg, data=bars(), resume=partial, progress=False)
    assert losses(resumed) == losses(whole)


def test_a_resume_may_change_the_thread_count_and_each_segment_records_its_own(tmp_path, monkeypatch):
    before = torch.get_num_threads()
    try:
        partial = interrupted_in_epoch_2(dataclasses.replace(FAST, threads=2), tmp_path, monkeypatch)
        resumed = fit(FAST, data=bars(), resume=partial, progress=False, threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert json.loads((resumed.path / "config.json").read_text())["threads"] == 2  # the saved recipe is kept
    segments = json.loads((resumed.path / "provenance.json").read_text())["segments"]
    assert [(s["after_epoch"], s["threads"]) for s in segments] == [(0, 2), (1, 1)]


def flat_validation(monkeypatch):
    """Validation scores that never improve after epoch 1: a plateau known by hand."""
    monkeypatch.setattr(T, "_scores", lambda logits, data: (1.0, 0.5))


def test_early_stopping_and_restore_best(tmp_path, monkeypatch):
    flat_validation(monkeypatch)
    cfg = dataclasses.replace(FAST, epochs=10, early_stop_patience=2)
    run = fit(cfg, out=tmp_path / "best", data=bars(), progress=False)
    assert run.metrics["epochs_run"] == 3 and run.metrics["epoch"] == 1  # stopped 2 epochs after the best
    last = fit(dataclasses.replace(cfg, restore_best=False), out=tmp_path / "last", data=bars(), progress=False)
    assert last.metrics["epoch"] == 3
    assert run.metrics["last_epoch"]["epoch"] == 3  # a restore-best run also reports the model it did not keep
    assert run.metrics["last_epoch"]["accuracy"] == last.metrics["accuracy"]
    assert "last_epoch" not in last.metrics
    best_weights = torch.load(run.path / "checkpoint.pt", weights_only=True)["state_dict"]
    last_weights = torch.load(last.path / "checkpoint.pt", weights_only=True)["state_dict"]
    assert not torch.equal(best_weights["head.weight"], last_weights["head.weight"])


def test_a_run_whose_best_epoch_is_its_last_reports_that_epoch_as_its_last(tmp_path, monkeypatch):
    calls = iter(range(1000))
    monkeypatch.setattr(T, "_scores", lambda logits, data: (1.0 / (1 + next(calls)), 0.5))  # always improving
    run = fit(FAST, out=tmp_path, data=bars(), progress=False)
    assert run.metrics["epoch"] == 3 and run.metrics["last_epoch"]["epoch"] == 3
    assert run.metrics["last_epoch"]["accuracy"] == run.metrics["accuracy"]


def test_learning_rate_drops_by_the_factor_after_patience_epochs_as_in_keras(tmp_path, monkeypatch):
    # Keras' ReduceLROnPlateau (the reproduced recipes' own) reduces once `patience` epochs in a row fail
    # to improve: epoch 1 sets the best, epochs 2 and 3 fail, so epoch 4 runs at lr / 10; 4 and 5 fail again.
    flat_validation(monkeypatch)
    cfg = dataclasses.replace(FAST, epochs=6, lr_patience=2, lr_factor=0.1)
    run = fit(cfg, out=tmp_path, data=bars(), progress=False)
    assert [r["lr"] for r in run.history] == pytest.approx([1e-3, 1e-3, 1e-3, 1e-4, 1e-4, 1e-5])


def test_missing_and_mismatched_runs_are_errors(tmp_path):
    with pytest.raises(RunNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path)
    with pytest.raises(RunNotFoundError, match="not a run folder"):
        evaluate(tmp_path, data=bars())
    with pytest.raises(RunNotFoundError, match="state.pt"):
        fit(FAST, data=bars(), resume=tmp_path, progress=False)
    run = fit(dataclasses.replace(FAST, epochs=1), out=tmp_path, data=bars(), progress=False)
    eight = dataclasses.replace(bars(), classes=bars().classes + (bars().classes[0].__class__("contempt"),))
    with pytest.raises(ClassMismatchError, match="model predicts"):
        evaluate(run.path, data=eight)


def test_a_label_mode_is_not_silently_dropped_when_the_data_comes_in_memory(tmp_path):
    cfg = dataclasses.replace(FAST, epochs=1, data=DataConfig(dataset="ferplus"))
    run = fit(cfg, out=tmp_path, data=bars(), progress=False)  # recorded as FER+, trained on bars
    with pytest.raises(ConfigError, match="not both"):
        evaluate(run.path, data=bars(), label_mode="majority")


def test_an_unknown_device_name_is_a_config_error_that_names_it():
    with pytest.raises(ConfigError, match="'gpu0'"):
        resolve_device("gpu0")
    with pytest.raises(ConfigError, match="'mps'.*expected auto, cpu, cuda"):  # a torch device facexai does not run on
        resolve_device("mps")


@pytest.mark.parametrize(
    "flags, expected",
    [
        ("fpu sse avx2 avx512f avx512bw avx512vl avx512dq", False),  # AVX-512 without BF16: emulated, slow
        ("fpu avx2 avx512f avx512bw avx512_bf16", True),
        ("fpu avx2 avx512bw amx_bf16 amx_tile", True),
        ("fpu sse4_2 avx2", False),
    ],
)
def test_cpu_bf16_is_native_hardware_bf16_only(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    assert bf16_supported(torch.device("cpu"), cpuinfo) is expected


def test_arm_cpu_bf16_reads_the_features_line(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n")
    assert bf16_supported(torch.device("cpu"), cpuinfo)


def test_forward_flops_are_counted_as_by_hand_and_history_accumulates_them(tmp_path):
    # small_cnn at 28x28x1: 2 * (in * out * 9) * H * W per conv (a multiply-add is 2), plus the head
    by_hand = 2 * (1 * 16 * 9 * 28 * 28 + 16 * 32 * 9 * 14 * 14 + 32 * 64 * 9 * 7 * 7 + 64 * 7)
    assert forward_gflop(create_model("small_cnn", 7, 1), 1, 28) == pytest.approx(by_hand / 1e9)
    run = fit(dataclasses.replace(FAST, model="small_cnn"), out=tmp_path, data=bars(), progress=False)
    train = 84  # bars(): training images
    assert [r["gflop"] for r in run.history] == pytest.approx([e * train * by_hand / 1e9 for e in (1, 2, 3)], abs=0.1)


def test_onecycle_warms_up_then_anneals_the_rate_each_batch(tmp_path):
    cfg = dataclasses.replace(FAST, epochs=4, schedule="onecycle", warmup=0.25, lr=0.01)
    run = fit(cfg, out=tmp_path, data=bars(), progress=False)
    lrs = [r["lr"] for r in run.history]  # the rate at the start of each epoch
    assert lrs[0] == pytest.approx(0.01 / 25)  # OneCycleLR starts at max_lr / div_factor
    assert lrs[1] == pytest.approx(0.01, rel=0.05)  # the peak sits a quarter of the way in
    assert lrs[1] > lrs[2] > lrs[3]


@pytest.mark.parametrize("epochs, steps", [(1, 4), (2, 2), (1, 2), (1, 1)])
def test_onecycle_takes_runs_too_short_for_a_whole_warm_up_step(epochs, steps):
    # torch's OneCycleLR divides by zero where warmup x steps is exactly 1 (a quick look: --limit-train 256)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    cfg = dataclasses.replace(FAST, epochs=epochs, schedule="onecycle", warmup=0.25 if epochs * steps != 2 else 0.5)
    sched = T.make_scheduler(opt, cfg, steps)
    for _ in range(epochs * steps):
        opt.step()
        sched.step()


def test_label_smoothing_mixes_targets_with_the_uniform_distribution():
    votes = torch.tensor([[1.0, 0, 0, 0], [0.5, 0.5, 0, 0]])
    assert torch.allclose(T._smoothed(votes, 0.2), torch.tensor([[0.85, 0.05, 0.05, 0.05], [0.45, 0.45, 0.05, 0.05]]))
    assert T._smoothed(votes, 0.0) is votes


def test_flip_tta_averages_the_logits_of_each_image_and_its_mirror():
    model = create_model("small_cnn", 7, 1).eval()
    images = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    pre = Preprocess(28, 1, (0.5,), (0.25,))
    engine = Engine(torch.device("cpu"), False, False)
    plain = predict(model, images, pre, engine)
    mirrored = predict(model, images.flip(-1), pre, engine)
    assert torch.allclose(predict(model, images, pre, engine, tta_flip=True), (plain + mirrored) / 2, atol=1e-6)


def test_ema_keeps_the_averaged_weights_evaluates_them_and_resumes_bit_for_bit(tmp_path, monkeypatch):
    cfg = dataclasses.replace(FAST, ema_decay=0.9, tta_flip=True, augment=AugmentConfig())
    whole = fit(cfg, out=tmp_path / "whole", data=bars(), progress=False)
    plain = fit(dataclasses.replace(cfg, ema_decay=None), out=tmp_path / "plain", data=bars(), progress=False)
    assert [r["train_loss"] for r in whole.history] == [r["train_loss"] for r in plain.history]  # training alike
    assert [r["val_loss"] for r in whole.history] != [r["val_loss"] for r in plain.history]  # evaluated: the average
    assert load_checkpoint(whole.path)[1]["tta_flip"] is True
    assert {"without_tta", "without_ema"} <= set(whole.metrics)  # each lever's share, from the run's own weights
    assert "without_ema" not in plain.metrics
    assert evaluate(whole.path, data=bars())["accuracy"] == whole.metrics["accuracy"]  # evaluate applies the TTA
    partial = interrupted_in_epoch_2(cfg, tmp_path / "cut", monkeypatch)
    resumed = fit(cfg, data=bars(), resume=partial, progress=False)
    assert losses(resumed) == losses(whole)
    a = torch.load(whole.path / "checkpoint.pt", weights_only=True)["state_dict"]
    b = torch.load(resumed.path / "checkpoint.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
