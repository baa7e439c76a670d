"""Model-randomisation sanity check for attribution maps (Adebayo et al. 2018, "Sanity checks for saliency maps").

An explanation of what the model learned must change when the model's weights are destroyed.
Cascading randomisation re-initialises the parametrised layers one at a time from the output
down, cumulatively, and compares the maps after each step with the original ones (per-image
Spearman rank correlation, optionally SSIM). A method whose maps stay similar once the whole
network is random is explaining the input (edges, brightness), not the model, and is flagged.
All work happens on a deep copy: the caller's model is never modified.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable

import numpy as np
import torch
from scipy import stats
from torch import nn

from facexai.io.progress import progress_bar


def parametrised_layers(model: nn.Module) -> list[str]:
    """Names of the modules that own parameters directly (conv, linear, norm...), in registration order."""
    return [name for name, m in model.named_modules() if next(m.parameters(recurse=False), None) is not None]


def _devices(model: nn.Module) -> list[int]:
    return sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})


def reinitialise(module: nn.Module, seed: int) -> None:
    """Re-draw every parameter in `module` (and its children) from its default initialisation.

    Uses each layer's own `reset_parameters` (which also resets norm layers' running statistics);
    parameters of a layer without one are drawn from N(0, std of the old values, or 0.01). The
    draw is seeded and the global RNG state is left as it was.
    """
    with torch.random.fork_rng(devices=_devices(module)), torch.no_grad():
        torch.manual_seed(seed)
        for m in module.modules():
            params = list(m.parameters(recurse=False))
            if not params:
                continue
            if callable(getattr(m, "reset_parameters", None)):
                m.reset_parameters()
            else:
                for p in params:
                    std = float(p.std()) if p.numel() > 1 else 0.0
                    p.normal_(0.0, std if std > 0 else 0.01)


def _top_down(work: nn.Module, compute_maps: Callable[[nn.Module], torch.Tensor]) -> tuple[list[str], torch.Tensor]:
    """(parametrised layers output-first by the order they ran in, the maps of `work`).

    The order comes from forward hooks during the original maps, so it is the real execution
    order, not the registration order; layers that never ran (they cannot change the maps) are
    left out. If no hook fired (maps computed without calling the modules), registration order is used.
    """
    names = parametrised_layers(work)
    modules = dict(work.named_modules())
    ran: list[str] = []

    def hook(name):
        return lambda module, args, output: ran.append(name)

    handles = [modules[n].register_forward_hook(hook(n)) for n in names]
    try:
        maps = compute_maps(work)
    finally:
        for h in handles:
            h.remove()
    order = list(dict.fromkeys(ran)) or names
    return order[::-1], maps


def _ranks_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) Spearman's rho between rows of a and b (N, P); NaN for a constant row."""
    ra, rb = stats.rankdata(a, axis=1), stats.rankdata(b, axis=1)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    den = np.sqrt((ra**2).sum(1) * (rb**2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(1) / den, np.nan)


def _unit(x: np.ndarray) -> np.ndarray:
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def compare_maps(original: torch.Tensor, maps: torch.Tensor, ssim: bool = True) -> dict[str, float | None]:
    """Mean per-image similarity of (N, H, W) maps: spearman, spearman_abs (mean |rho|), ssim.

    SSIM is on maps min-max scaled per image (data_range 1, skimage's 7x7 window); None when not
    asked for or the maps are smaller than 7x7. Images whose map is constant give NaN and are skipped.
    """
    if original.shape != maps.shape or maps.dim() != 3:
        raise ValueError(f"maps must be (N, H, W) like the originals {tuple(original.shape)}, got {tuple(maps.shape)}")
    a = original.detach().cpu().double().numpy()
    b = maps.detach().cpu().double().numpy()
    rho = _ranks_corr(a.reshape(len(a), -1), b.reshape(len(b), -1))  # (N,)
    with warnings.catch_warnings():  # all-NaN: "mean of empty slice"
        warnings.simplefilter("ignore", RuntimeWarning)
        out: dict[str, float | None] = {
            "spearman": float(np.nanmean(rho)),
            "spearman_abs": float(np.nanmean(np.abs(rho))),
            "ssim": None,
        }
    if ssim and min(a.shape[1:]) >= 7:
        from skimage.metrics import structural_similarity

        scores = [structural_similarity(_unit(x), _unit(y), data_range=1.0) for x, y in zip(a, b, strict=True)]
        out["ssim"] = float(np.mean(scores))
    return out


def cascading_randomization(
    model: nn.Module,
    compute_maps: Callable[[nn.Module], torch.Tensor],
    seed: int = 0,
    layers: list[str] | None = None,
    ssim: bool = True,
    progress: bool = False,
    description: str = "sanity check",
) -> list[dict]:
    """Randomise a copy of `model` layer by layer from the output down and compare its maps with the original.

    compute_maps(model) -> (N, H, W) maps of a fixed set of inputs and targets (it is called on the
    copy, in eval mode, once for the original maps and once per step; it must find any layer it
    hooks on the model it is given, e.g. `lambda m: cam_maps(m, cam_layer(m, name), x, t)`). layers: module names in the
    order to randomise (default: every parametrised layer, output first, in the order they ran).
    Randomisation is cumulative: step k has layers[:k + 1] re-initialised (`reinitialise`, seed + k).
    Returns one dict per step: step (1-based), layer, spearman (mean per-image rho with the
    original maps), spearman_abs (mean |rho|) and ssim (None when off or maps are under 7x7).
    The maps are compared as given: pass absolute values to compare magnitudes only. Norm layers
    are reset to their init (weight 1, bias 0, fresh running statistics), so on an untrained model
    their step repeats the previous numbers.
    """
    work = copy.deepcopy(model).eval()
    modules = dict(work.named_modules())
    if layers is None:
        layers, original = _top_down(work, compute_maps)
    else:
        bad = [n for n in layers if n not in modules or next(modules[n].parameters(), None) is None]
        if bad:
            raise ValueError(f"not parametrised layers of the model: {bad}")
        original = compute_maps(work)
    original = original.detach()
    results = []
    with progress_bar(progress) as bar:
        task = bar.add_task(f"{description} (layers)", total=len(layers))
        for k, name in enumerate(layers):
            reinitialise(modules[name], seed + k)
            maps = compute_maps(work)
            results.append({"step": k + 1, "layer": name, **compare_maps(original, maps, ssim)})
            bar.update(task, advance=1)
    return results


def flag_insensitive(results: list[dict], threshold: float = 0.5) -> bool:
    """True if the maps of the fully randomised model still match the original (mean |rho| > threshold).

    Such a method does not depend on what the model learned and is flagged. Uses the last step
    (the whole network random); NaN (e.g. constant maps) is not flagged.
    """
    if not results:
        raise ValueError("no randomisation results (the model has no parametrised layers?)")
    last = results[-1]
    score = last.get("spearman_abs", abs(last["spearman"]))
    return bool(score > threshold)
