"""Data-parallel training and sharded analysis through torch.distributed: two processes on the CPU (gloo), one
thread each, do what one process does."""

import dataclasses
import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn
from toy import bars

from facexai.config import AugmentConfig, TrainConfig
from facexai.models import registry

FAST = TrainConfig(epochs=2, batch_size=8, lr=1e-3, input_size=28, in_channels=1, seed=0, bf16=False,
                   augment=AugmentConfig(translate=0.1, erase=0.5))  # every draw, sliced per rank  # fmt: skip
pytestmark = pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="needs gloo")


class NoNorm(nn.Module):
    """A model without batch norm: two processes' half-batches give exactly the global batch's gradient."""

    def __init__(self, num_classes: int = 7, in_channels: int = 1):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.pool, self.head = nn.AdaptiveAvgPool2d(1), nn.Linear(8, num_classes)

    def forward(self, x):
        return self.head(self.pool(self.features(x)).flatten(1))


NO_NORM = registry.ModelSpec("no_norm", NoNorm, 28, 1, "features.1", "test model without batch norm")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_all(rank: int, world: int, port: int, out: str) -> None:
    """In one pair of processes: a run of the seed-like model (batch norm), a run of a model without it, and
    the latter interrupted in epoch 2 and resumed; each rank saves what it ended with."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), FACEXAI_CACHE=os.path.join(out, f"cache{rank}"))  # fmt: skip
    torch.set_num_threads(1)
    import facexai.training as T

    registry.register(NO_NORM)  # in this process only

    def keep(name, run):
        torch.save({"weights": run.model.state_dict(), "history": run.history, "path": str(run.path)},
                   os.path.join(out, f"{name}-rank{rank}.pt"))  # fmt: skip

    keep("norm", T.fit(FAST, out=os.path.join(out, "norm"), data=bars(), progress=False))
    no_norm = dataclasses.replace(FAST, model="no_norm")
    keep("no_norm", T.fit(no_norm, out=os.path.join(out, "no_norm"), data=bars(), progress=False))
    real, calls = T.random_affine, {"n": 0}

    def crash_in_epoch_2(n, *args):
        calls["n"] += 1
        if calls["n"] > 11:  # 84 training images / 8 per global batch = 11 batches per epoch
            raise KeyboardInterrupt
        return real(n, *args)

    T.random_affine = crash_in_epoch_2
    try:
        T.fit(no_norm, out=os.path.join(out, "cut"), data=bars(), progress=False)
    except KeyboardInterrupt:
        pass
    T.random_affine = real
    T.parallel.barrier()
    (partial,) = [p for p in os.listdir(os.path.join(out, "cut")) if p.endswith(".partial")]
    keep("resumed", T.fit(no_norm, data=bars(), progress=False, resume=os.path.join(out, "cut", partial)))
    torch.distributed.destroy_process_group()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """{name: [rank 0's, rank 1's]} for the runs of `_train_all`, and its folder."""
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_train_all, args=(2, free_port(), str(out)), nprocs=2, join=True)
    load = lambda name, r: torch.load(out / f"{name}-rank{r}.pt", weights_only=False)  # noqa: E731
    return {name: [load(name, r) for r in (0, 1)] for name in ("norm", "no_norm", "resumed")}, out


def losses(history):
    return [(r["train_loss"], r["val_loss"], r["val_acc"]) for r in history]


def test_two_processes_hold_one_model_and_write_one_complete_run_folder(trained):
    runs, out = trained
    a, b = runs["norm"]
    assert all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])
    assert losses(a["history"]) == losses(b["history"]) and a["path"] == b["path"]
    (run,) = list((out / "norm").iterdir())
    assert {"checkpoint.pt", "metrics.json", "history.csv", "provenance.json"} <= {p.name for p in run.iterdir()}
    assert json.loads((run / "provenance.json").read_text())["processes"] == 2


def test_without_batch_norm_two_processes_train_as_one_on_the_same_global_batch(trained, tmp_path, monkeypatch):
    from facexai.training import fit

    monkeypatch.setitem(registry._REGISTRY, "no_norm", NO_NORM)
    a, _ = trained[0]["no_norm"]
    one = fit(dataclasses.replace(FAST, model="no_norm"), out=tmp_path, data=bars(), progress=False)
    for (l2, v2, _), (l1, v1, _) in zip(losses(a["history"]), losses(one.history), strict=True):
        assert l2 == pytest.approx(l1, rel=1e-4) and v2 == pytest.approx(v1, rel=1e-4)
    for k, v in one.model.state_dict().items():
        torch.testing.assert_close(a["weights"][k], v, atol=1e-5, rtol=1e-4)


def test_an_interrupted_two_process_run_resumes_to_the_same_history(trained):
    runs, out = trained
    assert losses(runs["resumed"][0]["history"]) == losses(runs["no_norm"][0]["history"])
    assert losses(runs["resumed"][1]["history"]) == losses(runs["no_norm"][0]["history"])
    assert not any(p.name.endswith(".partial") for p in (out / "cut").iterdir())


def _analyse(rank: int, world: int, port: int, out: str, run: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), FACEXAI_CACHE=os.path.join(out, "cache"))  # fmt: skip
    torch.set_num_threads(1)
    from facexai import parallel
    from facexai.explain.analysis import ExplainConfig, SubjectConfig, load_subject, occlusion, saliency

    parallel.setup("cpu")
    subject = load_subject(run, SubjectConfig(limit=14, device="cpu"))
    cfg = ExplainConfig(methods=("gradcam", "ig"), fills=("blur",), ig_steps=2, n_boot=50, sanity_n=0, progress=False)
    rows = saliency(subject, cfg)[0] + occlusion(subject, cfg)[0]
    torch.save(rows, os.path.join(out, f"rows{rank}.pt"))
    torch.distributed.destroy_process_group()


def test_sharded_analysis_rows_equal_one_process_s(tmp_path, monkeypatch):
    from conftest import SYNTHETIC_RUN

    from facexai.explain.analysis import ExplainConfig, SubjectConfig, load_subject, occlusion, saliency

    monkeypatch.setenv("FACEXAI_CACHE", str(tmp_path / "cache"))
    subject = load_subject(SYNTHETIC_RUN, SubjectConfig(limit=14, device="cpu"))  # decodes once, for all three
    mp.spawn(_analyse, args=(2, free_port(), str(tmp_path), str(SYNTHETIC_RUN)), nprocs=2, join=True)
    cfg = ExplainConfig(methods=("gradcam", "ig"), fills=("blur",), ig_steps=2, n_boot=50, sanity_n=0, progress=False)
    one = saliency(subject, cfg)[0] + occlusion(subject, cfg)[0]
    for rank in (0, 1):
        two = torch.load(tmp_path / f"rows{rank}.pt", weights_only=False)
        expected = pytest.approx([r["estimate"] for r in one], rel=1e-5, abs=1e-8, nan_ok=True)
        assert [r["estimate"] for r in two] == expected
        assert [(r["group"], r["emotion"], r["region"], r["measure"]) for r in two] == \
            [(r["group"], r["emotion"], r["region"], r["measure"]) for r in one]  # fmt: skip
