"""References: what a removed region becomes (occlusion, Shapley values) or where a path starts (integrated
gradients). One idea, one registry; every entry maps model inputs to a same-shaped tensor in model space.

- "black": a black image (every channel 0 before standardisation), -mean/std per channel; needs the
  model's Preprocess. Asks "what do the bright pixels add?" and suppresses dark evidence (brows,
  pupils, an open mouth).
- "mean": the data set's mean image, 0 in standardised model space: the region becomes average.
- "blur": a strong Gaussian blur of the same image (sigma a tenth of the longer side by default): the
  region keeps its colour and lighting and loses its shape, the least out-of-distribution choice.
  "blur_narrow" and "blur_wide" use a twentieth and a fifth of the side: how much an answer depends on
  the blur's width.
- "noise": seeded standard Gaussian noise in model space: the region's evidence is destroyed. Drawn on
  the CPU for all inputs at once, so it does not depend on the device or on batching.

A tensor can stand in for a name: (C, H, W), (1, C, H, W) or (B, C, H, W), in model space.

One reference depends on what is removed, so it is computed per removal (`masked`), not per image:

- "inpaint": scikit-image's biharmonic inpainting of the removed pixels from the face around them
  (`inpaint_biharmonic`, about 1-10 ms a call): the region becomes a plausible continuation of the
  skin around it. Linear in the pixel values, so inpainting in model space is inpainting the image.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from skimage.restoration import inpaint_biharmonic
from torchvision.transforms.functional import gaussian_blur

from facexai.data.augment import Preprocess
from facexai.errors import ConfigError


def blur(x: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
    """Strong Gaussian blur of (B, C, H, W) images; sigma defaults to a tenth of the longer side.

    The kernel spans +-3 sigma, capped so that reflect padding stays inside the image. Always fp32,
    also under bf16 autocast: it prepares inputs (and its large kernels ran very slowly in bf16).
    Chunks of 256 images bound the padded copy's memory.
    """
    if len(x) == 0:
        return x
    h, w = x.shape[-2:]
    sigma = float(sigma) if sigma is not None else max(h, w) / 10
    k = min(2 * math.ceil(3 * sigma) + 1, 2 * min(h, w) - 1)
    k = max(k - (k % 2 == 0), 1)  # odd, at least 1
    with torch.autocast(x.device.type, enabled=False):
        return torch.cat([gaussian_blur(x[i : i + 256], kernel_size=[k, k], sigma=[sigma, sigma])
                          for i in range(0, len(x), 256)])  # fmt: skip


def _black(inputs: torch.Tensor, pre: Preprocess | None, seed: int, sigma: float | None) -> torch.Tensor:
    if pre is None:
        raise ConfigError("reference 'black' needs the model's Preprocess (pre=...) for its mean/std")
    mean = inputs.new_tensor(pre.mean).view(1, -1, 1, 1)
    std = inputs.new_tensor(pre.std).view(1, -1, 1, 1)
    return (-mean / std).expand_as(inputs)  # (0 - mean) / std


def _mean(inputs: torch.Tensor, pre: Preprocess | None, seed: int, sigma: float | None) -> torch.Tensor:
    return torch.zeros_like(inputs)


def _blur(inputs: torch.Tensor, pre: Preprocess | None, seed: int, sigma: float | None) -> torch.Tensor:
    return blur(inputs, sigma)


def _blur_narrow(inputs: torch.Tensor, pre: Preprocess | None, seed: int, sigma: float | None) -> torch.Tensor:
    return blur(inputs, max(inputs.shape[-2:]) / 20)


def _blur_wide(inputs: torch.Tensor, pre: Preprocess | None, seed: int, sigma: float | None) -> torch.Tensor:
    return blur(inputs, max(inputs.shape[-2:]) / 5)


def _noise(inputs: torch.Tensor, pre: Preprocess | None, seed: int, sigma: float | None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(inputs.shape, generator=g, dtype=torch.float32).to(inputs.device, inputs.dtype)


Reference = Callable[[torch.Tensor, Preprocess | None, int, float | None], torch.Tensor]
REFERENCES: dict[str, Reference] = {
    "black": _black, "mean": _mean, "blur": _blur, "blur_narrow": _blur_narrow, "blur_wide": _blur_wide,
    "noise": _noise,
}  # fmt: skip


def _inpaint(inputs: torch.Tensor, removed: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) the inputs with the removed pixels ((B, 1, H, W) bool) inpainted, per image and channel; an
    image removed whole has nothing to inpaint from and becomes the data-set mean (0 in model space)."""
    out = inputs.detach().float().cpu().numpy().copy()
    holes = removed[:, 0].cpu().numpy()
    for b in range(len(out)):
        if holes[b].all():
            out[b] = 0.0
        elif holes[b].any():
            out[b] = inpaint_biharmonic(out[b], holes[b], channel_axis=0)
    return torch.from_numpy(out).to(inputs.device, inputs.dtype)


MASKED: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"inpaint": _inpaint}


def check_reference(reference: str | torch.Tensor, masked: bool = False) -> None:
    """A name in REFERENCES (or, where a removal mask is known, in MASKED), or a tensor."""
    names = [*REFERENCES, *(MASKED if masked else ())]
    if not isinstance(reference, torch.Tensor) and reference not in names:
        raise ConfigError(f"unknown reference {reference!r}; expected one of {', '.join(names)} or a tensor")


def fill_rows(inputs: torch.Tensor, fills: torch.Tensor | None, name, removed: torch.Tensor) -> torch.Tensor:
    """(rows, C, H, W): the inputs of some rows with their removed pixels ((rows, 1, H, W) bool) replaced,
    from precomputed per-image fills (rows, C, H, W), or by a masked reference computed for these removals."""
    if isinstance(name, str) and name in MASKED:
        return torch.where(removed, MASKED[name](inputs, removed), inputs)
    return torch.where(removed, fills, inputs)


def reference(
    inputs: torch.Tensor,
    name: str | torch.Tensor,
    pre: Preprocess | None = None,
    seed: int = 0,
    blur_sigma: float | None = None,
) -> torch.Tensor:
    """(B, C, H, W) reference for `inputs` (B, C, H, W) in model space (an expanded view where constant); a
    masked reference (inpaint) has none of its own: the inputs themselves stand in, filled per removal later."""
    if isinstance(name, str) and name in MASKED:
        return inputs
    check_reference(name)
    if isinstance(name, torch.Tensor):
        r = name.to(inputs.device, inputs.dtype)
        return (r.unsqueeze(0) if r.dim() == 3 else r).expand_as(inputs)
    return REFERENCES[name](inputs, pre, seed, blur_sigma)
