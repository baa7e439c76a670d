"""Training throughput of the seed network, variants side by side in one run.

    python benchmarks/train_throughput.py --threads 2 --steps 8 [--out results/benchmarks/train-throughput]

Prints images/s for each (input size, channels_last, bf16) on the current device
and the ratio to the fp32 contiguous baseline of the same size; and the training pipeline's own
cost: the step as `fit` runs it (gather uint8 images by index, one affine grid for resize and
augmentation, standardise) against the bare network step on ready tensors of the same batch
(`pipeline_ratio`; goal >= 0.9), medians of --repeats timings taken alternately.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from facexai.config import AugmentConfig
from facexai.data.augment import Preprocess, prepare, random_affine
from facexai.io.files import write_csv, write_json
from facexai.metrics import soft_cross_entropy
from facexai.models import create_model
from facexai.provenance import git_commit, now, provenance
from facexai.runs import Engine, bf16_supported, resolve_device


def images_per_s(engine: Engine, size: int, batch: int, steps: int, repeats: int = 1) -> tuple[float, float]:
    """(pipeline images/s, bare-step images/s), each the median of `repeats` timings of `steps` steps."""
    torch.manual_seed(0)
    model = engine.model(create_model("seed_vgg", 7, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    pre = Preprocess(size, 3, (0.5,) * 3, (0.25,) * 3)
    pool = torch.randint(0, 256, (8 * batch, 1, 48, 48), dtype=torch.uint8, device=engine.device)  # FER+-like
    targets = torch.softmax(torch.randn(8 * batch, 7, device=engine.device), 1)
    gen = torch.Generator(engine.device).manual_seed(0)
    ready = engine.input(prepare(pool[:batch], pre, random_affine(batch, AugmentConfig(), gen, engine.device)))

    def train(x: torch.Tensor, t: torch.Tensor) -> None:
        with engine.autocast():
            loss = soft_cross_entropy(model(x), t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def pipeline() -> None:  # as fit's batch loop: gather, warp, standardise, step
        idx = torch.randint(0, len(pool), (batch,), generator=gen, device=engine.device)
        x = engine.input(prepare(pool[idx], pre, random_affine(batch, AugmentConfig(), gen, engine.device)))
        train(x, targets[idx])

    def bare() -> None:
        train(ready, targets[:batch])

    def timed(step) -> float:
        if engine.device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(steps):
            step()
        if engine.device.type == "cuda":
            torch.cuda.synchronize()
        return batch * steps / (time.perf_counter() - t)

    for _ in range(2):  # warm-up: kernel selection, allocator
        pipeline(), bare()
    runs = [(timed(pipeline), timed(bare)) for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--sizes", default="100,48")
    p.add_argument("--repeats", type=int, default=3, help="timings per variant; the median is reported")
    p.add_argument("--out", type=Path, default=None, help="folder for throughput.csv and provenance.json")
    args = p.parse_args()
    started, commit = now(), git_commit()
    rows = []
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    bf16_options = (False, True) if bf16_supported(device) else (False,)
    print(f"device {device}, threads {torch.get_num_threads()}, hardware bf16 {bf16_supported(device)}")
    for size in (int(s) for s in args.sizes.split(",")):
        base = None
        for bf16 in bf16_options:
            for cl in (False, True):
                ips, bare = images_per_s(Engine(device, bf16, cl), size, args.batch, args.steps, args.repeats)
                base = base or ips
                rows.append(
                    {
                        "size": size,
                        "bf16": bf16,
                        "channels_last": cl,
                        "images_per_s": round(ips, 2),
                        "ratio_to_fp32_contiguous": round(ips / base, 3),
                        "bare_step_images_per_s": round(bare, 2),
                        "pipeline_ratio": round(ips / bare, 3),
                    }
                )
                print(
                    f"size {size:3d}  bf16 {bf16!s:5}  channels_last {cl!s:5}  {ips:8.1f} img/s  x{ips / base:.2f}"
                    f"  bare step {bare:8.1f} img/s  pipeline/bare {ips / bare:.3f}",
                    flush=True,
                )

    if args.out is not None:
        write_csv(args.out / "throughput.csv", rows)
        write_json(
            args.out / "provenance.json", provenance(vars(args) | {"out": str(args.out)}, device, started, commit)
        )


if __name__ == "__main__":
    main()
