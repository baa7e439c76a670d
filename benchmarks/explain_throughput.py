"""Attribution throughput of the seed network: facexai's batched paths vs the libraries called per image.

    python benchmarks/explain_throughput.py --threads 1 --n 8 [--out results/benchmarks/explain-throughput]
    python benchmarks/explain_throughput.py --threads 2 --n 16 --bf16   # facexai --bf16 vs the libraries in fp32

For Grad-CAM (pytorch-grad-cam GradCAM), integrated gradients (captum, 32 steps) and region
occlusion (8 regions, mean fill), prints images/s of
  per image: the library called once per image (GradCAM built once, then one image per call;
             IntegratedGradients and FeatureAblation one image per attribute call), and
  batched:   facexai.explain's cam_maps / integrated_gradients / occlude over all n images,
and the ratio batched / per image (medians of --repeats runs); and each batched path as a fraction
of its compute bound: the images/s it would reach doing nothing but its network passes on ready
tensors of the same batch shape (Grad-CAM one forward and backward per image, IG 32, occlusion 9
forwards; goal >= 0.8). Random weights and inputs (speed does not depend on training).
With --bf16 the batched path runs as `saliency --bf16` / `occlude --bf16` do (channels_last, bf16
autocast) while the per-image path stays the libraries in fp32: the speed-up over gluing the
libraries by hand, side by side in one run.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from captum.attr import FeatureAblation, IntegratedGradients
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from facexai.explain.analysis import ExplainConfig
from facexai.explain.gradcam import cam_maps
from facexai.explain.integrated import integrated_gradients
from facexai.explain.occlusion import occlude
from facexai.io.files import write_csv, write_json
from facexai.models import cam_layer, create_model
from facexai.provenance import git_commit, now, provenance

REGIONS = 8
STEPS = 32


def rate(fn: Callable[[int], object], n: int, device: torch.device) -> float:
    """Images/s of one call fn(n) over the first n images (after the caller has warmed `fn` up)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn(n)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t)


def parser(doc: str, n: int) -> argparse.ArgumentParser:
    """The options both attribution benchmarks take."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=n, help="images per measurement")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    p.add_argument("--size", type=int, default=100, help="input side, pixels")
    p.add_argument("--out", type=Path, default=None, help="folder for throughput.csv and provenance.json")
    p.add_argument("--repeats", type=int, default=5, help="runs per measurement; the median is kept")
    return p


def start(args: argparse.Namespace):
    """(started, commit, device, *problem): the run's provenance start, threads set, random problem."""
    started, commit = now(), git_commit()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    return started, commit, device, *problem(args.n, args.size, device)


def problem(n: int, size: int, device: torch.device):
    """Seeded random seed network (eval), inputs (n, 3, S, S), targets (n,) and region maps (n, S, S)."""
    torch.manual_seed(0)
    model = create_model("seed_vgg", 7, 3).to(device).eval()
    x = torch.randn(n, 3, size, size, device=device)  # standardised inputs
    t = torch.randint(0, 7, (n,), device=device)
    regions = torch.randint(0, REGIONS + 1, (n, size, size), device=device)
    return model, x, t, regions


def save(
    args: argparse.Namespace, rows: list[dict], device: torch.device, started: str, commit: str | None, **extra
) -> None:
    """throughput.csv and provenance.json under --out, if given; `extra` goes into the recorded config."""
    if args.out is not None:
        write_csv(args.out / "throughput.csv", rows)
        config = vars(args) | {"out": str(args.out), "threads": torch.get_num_threads(), "ig_steps": STEPS} | extra
        write_json(args.out / "provenance.json", provenance(config, device, started, commit))


def compute_bounds(model, x, t, rows: int, args, device) -> dict[str, float]:
    """Each method's images/s if it did nothing but its network passes on ready tensors of the batched path's
    shape (`rows` rows): Grad-CAM one forward and backward per image, IG STEPS of them, occlusion
    REGIONS + 1 forwards. Bare rates are medians of --repeats timings (bf16 autocast where --bf16)."""
    xs = x[:rows].detach()
    frozen = [p.requires_grad_(False) for p in model.parameters()]
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext()

    def forward(k: int) -> None:
        with torch.no_grad(), autocast:
            for _ in range(max(1, k // rows)):
                model(xs)

    def forward_backward(k: int) -> None:
        for _ in range(max(1, k // rows)):
            z = xs.clone().requires_grad_(True)
            with autocast:
                out = model(z).float()
            out.gather(1, t[:rows, None]).sum().backward()

    forward(rows), forward_backward(rows)  # warm-up
    n = max(rows, args.n // rows * rows)
    fwd = statistics.median(rate(forward, n, device) for _ in range(args.repeats))
    fwd_bwd = statistics.median(rate(forward_backward, n, device) for _ in range(args.repeats))
    for p in model.parameters():
        p.requires_grad_(True)
    del frozen
    print(f"bare passes on ready ({rows}, 3, {args.size}, {args.size}) tensors: forward {fwd:.1f} img/s, "
          f"forward + backward {fwd_bwd:.1f} img/s", flush=True)
    return {"gradcam": fwd_bwd, "ig": fwd_bwd / STEPS, "occlusion": fwd / (REGIONS + 1)}


def main() -> None:
    p = parser(__doc__, 64)
    p.add_argument(
        "--batch",
        type=int,
        default=None,
        help="rows per forward, batched Grad-CAM and occlusion (default: the analysis' batch size)",
    )
    p.add_argument("--channels-last", action="store_true", help="channels_last model and inputs (both paths)")
    p.add_argument("--only", default="gradcam,ig,occlusion", help="comma-separated subset of the methods")
    p.add_argument("--bf16", action="store_true", help="batched paths channels_last under bf16 autocast (as --bf16)")
    args = p.parse_args()
    started, commit, device, model, x, t, regions = start(args)
    if args.channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    layer = cam_layer(model, "seed_vgg")
    fast, xf, fast_layer = model, x, layer  # what the batched paths run on
    if args.bf16:  # a channels_last copy: .to converts in place, and the per-image path keeps `model`
        fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
        xf, fast_layer = x.contiguous(memory_format=torch.channels_last), cam_layer(fast, "seed_vgg")
    rows_per_pass = args.batch or ExplainConfig.batch_size  # Grad-CAM and occlusion, as the analysis batches
    # as the analysis' IG (explain.integrated.attribute_ig): --batch rows per pass, --batch / 8 images per call
    ig_kw = {"batch_size": max(2, args.batch // 8), "internal_batch_size": args.batch} if args.batch else {}

    def gradcam_per_image(k: int) -> None:
        with GradCAM(model=model, target_layers=[layer]) as cam:
            for i in range(k):
                cam(input_tensor=x[i : i + 1], targets=[ClassifierOutputTarget(int(t[i]))])

    def ig_per_image(k: int) -> None:
        ig = IntegratedGradients(model)
        for i in range(k):
            ig.attribute(
                x[i : i + 1],
                baselines=torch.zeros_like(x[i : i + 1]),
                target=int(t[i]),
                n_steps=STEPS,
                return_convergence_delta=True,
            )

    def occlusion_per_image(k: int) -> None:
        fa = FeatureAblation(lambda z: F.softmax(model(z), 1))
        with torch.no_grad():
            for i in range(k):
                fa.attribute(x[i : i + 1], baselines=0.0, target=int(t[i]), feature_mask=regions[i : i + 1, None])

    methods = {  # name -> (per image over the first k images, batched over the first k images)
        "gradcam": (gradcam_per_image, lambda k: cam_maps(fast, fast_layer, xf[:k], t[:k], batch_size=rows_per_pass)),
        "ig": (
            ig_per_image,
            lambda k: integrated_gradients(fast, xf[:k], t[:k], baseline="mean", n_steps=STEPS, **ig_kw),
        ),
        "occlusion": (
            occlusion_per_image,
            lambda k: occlude(fast, xf[:k], t[:k], regions[:k], REGIONS, fill="mean", batch_size=rows_per_pass),
        ),
    }
    print(
        f"seed_vgg {args.size}x{args.size}, n {args.n}, device {device}, threads {torch.get_num_threads()}, "
        f"channels_last {args.channels_last}, batched bf16 {args.bf16}, batch {rows_per_pass}, "
        f"IG {STEPS} steps, occlusion {REGIONS} regions",
        flush=True,
    )
    bound = compute_bounds(fast, xf, t, rows_per_pass, args, device)
    rows = []
    for name in args.only.split(","):
        per_image, batched = methods[name]
        per_image(2)  # warm-up: kernel selection, allocator
        slow = statistics.median(rate(per_image, args.n, device) for _ in range(args.repeats))
        with torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext():
            batched(2)
            quick = statistics.median(rate(batched, args.n, device) for _ in range(args.repeats))
        print(f"{name:10s} per image {slow:8.2f} img/s   batched {quick:8.2f} img/s   x{quick / slow:.2f}   "
              f"of the compute bound {bound[name]:8.2f} img/s: {quick / bound[name]:.2f}", flush=True)  # fmt: skip
        rows.append({"method": name, "per_image_img_s": slow, "batched_img_s": quick, "ratio": quick / slow,
                     "bound_img_s": bound[name], "fraction_of_bound": quick / bound[name]})  # fmt: skip
    save(
        args,
        rows,
        device,
        started,
        commit,
        batched_rows=rows_per_pass,
        batched_channels_last=args.channels_last or args.bf16,
    )


if __name__ == "__main__":
    main()
