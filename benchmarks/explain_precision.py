"""Attribution throughput of the seed network by memory format and precision, side by side in one run.

    python benchmarks/explain_precision.py --threads 2 --n 16 [--out results/benchmarks/explain-precision]

For facexai.explain's batched Grad-CAM, integrated gradients (32 steps, constant baseline like
the default black) and region occlusion (8 regions, blur fill), batched as `saliency` and
`occlude` batch them (ExplainConfig.batch_size rows), prints the median images/s of --repeats runs of
  fp32:          contiguous model and inputs (the analysis path before channels_last),
  fp32 cl:       channels_last (what `saliency` / `occlude` run by default),
  bf16:          contiguous under bf16 autocast,
  bf16 cl:       channels_last under bf16 autocast (`--bf16`),
and each one's ratio to fp32 and to fp32 cl. Random weights and inputs (speed does not depend on
training); how far bf16 moves the findings is measured on real faces, not here (README: bf16).
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Callable

import torch
from explain_throughput import REGIONS, STEPS, parser, rate, save, start  # benchmarks/ is on sys.path as a script

from facexai.explain.analysis import ExplainConfig
from facexai.explain.gradcam import cam_maps
from facexai.explain.integrated import integrated_gradients
from facexai.explain.occlusion import occlude
from facexai.models import cam_layer

BATCH = ExplainConfig.batch_size  # rows per forward pass in the analysis
VARIANTS = {"fp32": (False, False), "fp32 cl": (True, False), "bf16": (False, True), "bf16 cl": (True, True)}


def calls(model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, regions: torch.Tensor) -> dict[str, Callable]:
    """Each batched method as fn(k): explain the first k images."""
    layer = cam_layer(model, "seed_vgg")
    return {
        "gradcam": lambda k: cam_maps(model, layer, x[:k], t[:k], batch_size=BATCH),
        "ig": lambda k: integrated_gradients(model, x[:k], t[:k], baseline="mean", n_steps=STEPS),
        "occlusion": lambda k: occlude(model, x[:k], t[:k], regions[:k], REGIONS, fill="blur", batch_size=BATCH),
    }


def main() -> None:
    p = parser(__doc__, 16)
    args = p.parse_args()
    started, commit, device, base, x0, t, regions = start(args)
    print(
        f"seed_vgg {args.size}x{args.size}, n {args.n}, device {device}, threads {torch.get_num_threads()}, "
        f"IG {STEPS} steps, occlusion {REGIONS} regions",
        flush=True,
    )
    rows, ref = [], {}  # ref[(name, variant)]: images/s
    for variant, (cl, bf16) in VARIANTS.items():  # (channels_last, bf16)
        fmt = torch.channels_last if cl else torch.contiguous_format
        model = copy.deepcopy(base).to(memory_format=fmt)  # .to converts in place: keep `base` contiguous
        methods = calls(model, x0.contiguous(memory_format=fmt), t, regions)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            for name, fn in methods.items():
                fn(2)  # warm-up: kernel selection, allocator
                ips = statistics.median(rate(fn, args.n, device) for _ in range(args.repeats))
                ref[name, variant] = ips
                r32, rcl = ips / ref[name, "fp32"], ips / ref.get((name, "fp32 cl"), math.nan)
                print(
                    f"{name:10s} {variant:8s} {ips:8.2f} img/s   x{r32:.2f} of fp32   x{rcl:.2f} of fp32 cl", flush=True
                )
                rows.append(
                    {"method": name, "variant": variant, "img_s": ips, "ratio_to_fp32": r32, "ratio_to_fp32_cl": rcl}
                )
    save(args, rows, device, started, commit, batch=BATCH)


if __name__ == "__main__":
    main()
