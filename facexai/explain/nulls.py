"""Null explainers: what a region ranking looks like when it knows nothing about the model.

A method's region answers mean something only beside these, on the same faces and masks:

- "uniform": the same value everywhere. Every region gets relevance 1: no ranking at all (ties).
- "centre": a Gaussian blob at the centre of the face (the centroid of its region masks) whose width
  is fitted to the face (sigma = the spread of the face's pixels about that centre). It knows where
  the face is and nothing else: area-normalised relevance rewards it for small central regions (the
  nose, the glabella), the artefact a method's "nose first" must beat.
- "random": seeded uniform noise per pixel: a random ranking.
- `random_model(run)`: the run with every weight re-drawn (the model-randomisation null): any method
  run on it explains the input, not what the model learned.

The best constant ranking (per emotion, the mean ranking of the true effects on other faces) needs
the truth and lives in `scores.py`.
"""

from __future__ import annotations

import copy
import dataclasses

import torch

from facexai.explain.base import Settings, from_maps
from facexai.explain.sanity import reinitialise


def uniform(run, inputs: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor, settings: Settings):
    maps = torch.ones(len(inputs), *inputs.shape[-2:])
    return from_maps("uniform", maps, masks, "none")


def centre(run, inputs: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor, settings: Settings):
    face = masks.any(1).cpu().double()  # (N, H, W)
    h, w = face.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    area = face.sum((1, 2)).clamp(min=1)  # (N,)
    cy, cx = (face * yy).sum((1, 2)) / area, (face * xx).sum((1, 2)) / area
    d2 = (yy - cy.view(-1, 1, 1)) ** 2 + (xx - cx.view(-1, 1, 1)) ** 2  # (N, H, W)
    sigma2 = ((face * d2).sum((1, 2)) / area / 2).clamp(min=1.0)  # per-axis variance of the face's pixels
    maps = torch.exp(-d2 / (2 * sigma2.view(-1, 1, 1)))
    return from_maps("centre", maps.float(), masks, "none")


def random(run, inputs: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor, settings: Settings):
    g = torch.Generator().manual_seed(settings.seed)
    maps = torch.rand(len(inputs), *inputs.shape[-2:], generator=g)
    return from_maps("random", maps, masks, "none")


def random_model(run, seed: int = 0):
    """A copy of `run` whose every parametrised layer is re-initialised (seeded); the caller's is untouched."""
    model = copy.deepcopy(run.model)
    reinitialise(model, seed)
    return dataclasses.replace(run, model=model.eval())
