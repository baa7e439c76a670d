"""True region effects by intervention on synthetic faces: what a model uses, not where evidence was drawn.

Every synthetic face is defined by its parameters (AU intensities, identity, pose, lighting, noise;
data/synthetic.py). For each face and region the face is re-rendered with that region neutral (every
AU's effect there switched off, and the shortcut cue removed where it lies) and everything else
identical; the drop in the model's probability of the explained class is the region's true effect
for that model. Intervening on the cause, not on pixels, so no fill or baseline decides the answer.
"""

from __future__ import annotations

import torch

from facexai.data.augment import prepare
from facexai.data.base import FaceDataset
from facexai.data.synthetic import params_of, render_faces
from facexai.explain.base import batches
from facexai.facs import FaceRegion
from facexai.runs import Run


@torch.no_grad()
def probabilities(run: Run, images: torch.Tensor, targets: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """(N,) float64 fp32-model softmax probability of class targets[i] for uint8 images (N, C, H, W)."""
    out = torch.empty(len(images), dtype=torch.float64)
    run.model.eval()
    for s in batches(len(images), batch):
        x = run.engine.input(prepare(images[s].to(run.engine.device), run.pre))
        p = torch.softmax(run.model(x).float(), 1)
        out[s] = p.gather(1, targets[s, None].to(p.device)).squeeze(1).double().cpu()
    return out


def intervention_effects(
    run: Run,
    data: FaceDataset,
    targets: torch.Tensor,
    regions: tuple[FaceRegion, ...] = tuple(FaceRegion),
    progress: bool = False,
) -> torch.Tensor:
    """(N, R) float64 true effects: p(target | face) - p(target | face with region r neutral).

    data: synthetic faces (their parameters in `extras`), e.g. a subject's analysed split; targets: (N,)
    the class each face is explained for. A re-rendered face is the stored one bit for bit, so the first
    term is the model's probability on the stored image.
    """
    p = params_of(data)
    size, channels = data.size[0], data.channels
    base = probabilities(run, data.images, targets)  # (N,)
    effects = torch.empty(len(data), len(regions), dtype=torch.float64)
    for s in batches(len(regions), 1, progress, "intervention truth (regions)"):
        region = FaceRegion(regions[s.start])
        images = torch.from_numpy(render_faces(p.neutral_region(region), size, channels))
        effects[:, s.start] = base - probabilities(run, images, targets)
    return effects
