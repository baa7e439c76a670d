"""Integrated gradients through captum, batched over images and steps, from a named reference.

IG attributes f(x) - f(x') to input pixels along the straight path from a baseline x' to x.
What "absence of evidence" means is the baseline's choice: any entry of `references.REFERENCES`
(black by default: "what do the bright pixels add?"; blur keeps the coarse face layout and
lighting and removes edges, so attributions go to fine detail such as brows and mouth corners), or
a tensor in model space.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from captum.attr import GradientShap, IntegratedGradients
from torch import nn

from facexai.data.augment import Preprocess
from facexai.explain import importance as I
from facexai.explain.base import (
    Probabilities,
    Settings,
    batches,
    check_score,
    check_targets,
    from_maps,
    frozen,
)
from facexai.explain.references import check_reference, reference


@contextmanager
def _no_autocast_cache() -> Iterator[None]:
    """Autocast's cast cache off for the call, restored after (a no-op outside autocast).

    The cache keeps the bf16 cast of every grad-requiring leaf until the autocast context exits,
    and captum's path points are such leaves, new on every batch: one long `--bf16` context over a
    split kept ~6 MB per 100x100 image at 32 steps (OOM at 3,572 faces). Parameters are frozen
    here, so the cache has nothing worth reusing.
    """
    enabled = torch.is_autocast_cache_enabled()
    torch.set_autocast_cache_enabled(False)
    try:
        yield
    finally:
        torch.set_autocast_cache_enabled(enabled)


def integrated_gradients(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    baseline: str | torch.Tensor = "black",
    pre: Preprocess | None = None,
    n_steps: int = 32,
    internal_batch_size: int = 16,
    batch_size: int = 2,
    progress: bool = False,
    blur_sigma: float | None = None,
    score: str = "logit",
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(attributions (B, C, H, W), delta (B,)) of the target scores, by captum's IntegratedGradients.

    inputs: standardised float (B, C, H, W) on the model's device; targets: (B,) class indices;
    baseline: a reference name or tensor (`references.reference`); score: the class's logit or
    softmax probability. `batch_size` images go to captum per call and captum evaluates their
    n_steps path points in forward passes of about `internal_batch_size` rows (images x steps
    together), so large inputs run in bounded memory (the small defaults suit a CPU, where chunks of
    8-16 rows ran fastest; on a GPU raise both). delta is the convergence delta,
    sum(attr) - (f(x) - f(x')) per image (captum's Gauss-Legendre rule); it shrinks as n_steps
    grows. f(x) and f(x') are evaluated in fp32 even under bf16 autocast, so the delta also holds
    the error of bf16 gradients against the fp32 model. Parameters are frozen for the call, so only
    input gradients are computed.
    """
    check_reference(baseline)  # a path needs a baseline image: no masked reference
    base_all = reference(inputs, baseline, pre, seed, blur_sigma)  # (B, C, H, W)
    targets = check_targets(targets, len(inputs)).to(inputs.device)
    forward = Probabilities(model) if check_score(score, "logit") == "probability" else model
    attributions = torch.empty_like(inputs, dtype=torch.float32)
    deltas = torch.empty(len(inputs), dtype=torch.float32, device=inputs.device)
    with frozen(model), torch.enable_grad(), _no_autocast_cache():
        ig = IntegratedGradients(forward)
        for s in batches(len(inputs), batch_size, progress, "integrated gradients"):
            x, base = inputs[s], base_all[s]  # (b, C, H, W)
            attr = ig.attribute(
                x,
                baselines=base,
                target=targets[s],
                n_steps=n_steps,
                internal_batch_size=max(internal_batch_size, len(x)),  # captum needs >= b rows
            )
            attributions[s] = attr.detach()
        # f(x) - f(x') in fp32 for the delta, in passes of internal_batch_size images rather than per captum
        # call: two-image fp32 passes cost about a tenth of a 2-core CPU's analysis (the same logits here)
        with torch.no_grad(), torch.autocast(inputs.device.type, enabled=False):
            for s in batches(len(inputs), max(internal_batch_size, batch_size)):
                t = targets[s, None]
                here, there = forward(inputs[s]).float(), forward(base_all[s].contiguous()).float()
                change = here.gather(1, t) - there.gather(1, t)  # (b, 1)
                deltas[s] = attributions[s].sum((1, 2, 3)) - change.squeeze(1)  # (b,)
    return attributions, deltas


def attribute_ig(name: str = "ig", default_reference: str = "black"):
    """A registry entry: positive IG attribution (channels summed) as the map, the delta among the extras;
    from `settings.reference`, else `default_reference`."""

    def attribute(run, inputs: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor, settings: Settings):
        score = check_score(settings.score, "logit")
        attr, delta = integrated_gradients(
            run.model, inputs, targets, settings.reference or default_reference, run.pre, settings.steps,
            # rows per pass follow settings.batch_size (16 on a CPU: 2 images x 32 steps per captum call, as
            # before; a GPU wants hundreds of rows per pass, and images per call grow with them)
            internal_batch_size=settings.batch_size, batch_size=max(2, settings.batch_size // 8),
            progress=settings.progress, blur_sigma=settings.blur_sigma, score=score, seed=settings.seed,
        )  # fmt: skip
        maps = I.attribution_map(attr.cpu().contiguous(), "positive")
        return from_maps(name, maps, masks, score, delta=delta.cpu())

    return attribute


def expected_gradients(run, inputs: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor, settings: Settings):
    """Expected gradients (captum's GradientShap): IG averaged over baselines drawn from the data rather than one
    fixed image; the baselines are up to 16 of the given faces (seeded), `settings.steps` samples per face.

    Written around the library only to batch it and to freeze the model, as integrated_gradients does.
    """
    score = check_score(settings.score, "logit")
    forward = Probabilities(run.model) if score == "probability" else run.model
    g = torch.Generator().manual_seed(settings.seed)
    pool = inputs[torch.randperm(len(inputs), generator=g)[:16].to(inputs.device)].detach()  # (M, C, H, W)
    attr = torch.empty_like(inputs, dtype=torch.float32)
    numpy_state = np.random.get_state()  # captum draws baselines and path points from numpy's and torch's global
    np.random.seed(settings.seed)  # generators: seed both for the call, and leave the caller's as they were
    try:
        with torch.random.fork_rng(devices=[]), frozen(run.model), torch.enable_grad(), _no_autocast_cache():
            torch.manual_seed(settings.seed)
            shap = GradientShap(forward)
            for s in batches(len(inputs), 2, settings.progress, "expected gradients"):
                attr[s] = shap.attribute(inputs[s], baselines=pool, target=targets[s].to(inputs.device),
                                         n_samples=settings.steps, stdevs=0.0).detach()  # fmt: skip
    finally:
        np.random.set_state(numpy_state)
    return from_maps("expected_gradients", I.attribution_map(attr.cpu(), "positive"), masks, score)
