"""What `facexai list` shows, importable without torch (the CLI answers in well under 2 s): the one list of
attribution method names with their labels and kinds, and of reference names. The registries in
explain/methods.py and explain/references.py hold the code under these names; a test keeps them in step."""

from __future__ import annotations

# name: (how reports name it, kind). Kinds: "map" (per-pixel maps, scored by region relevance);
# "perturbation" (region scores directly); "null" (knows nothing about the model: the chance level).
METHODS: dict[str, tuple[str, str]] = {
    "gradcam": ("Grad-CAM", "map"),
    "gradcampp": ("Grad-CAM++", "map"),
    "hirescam": ("HiResCAM", "map"),
    "layercam": ("LayerCAM", "map"),
    "gradcam_fine": ("Grad-CAM (fine layer)", "map"),
    "ig": ("integrated gradients", "map"),
    "ig_blur": ("integrated gradients (blur baseline)", "map"),
    "expected_gradients": ("expected gradients", "map"),
    "occlusion": ("occlusion", "perturbation"),
    "occlusion_area": ("occlusion per unit area", "perturbation"),
    "shapley": ("region Shapley values", "perturbation"),
    "uniform": ("uniform map (null)", "null"),
    "centre": ("centre-prior Gaussian (null)", "null"),
    "random": ("random map (null)", "null"),
}

# the methods `facexai scorecard` scores by default: every method above but the nulls (scored anyway)
SCORECARD_METHODS: tuple[str, ...] = tuple(name for name, (_, kind) in METHODS.items() if kind != "null")

# what replaces a removed region, or forms an IG baseline (besides "inpaint", for masked removal only)
REFERENCES: tuple[str, ...] = ("black", "mean", "blur", "blur_narrow", "blur_wide", "noise")
