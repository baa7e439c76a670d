"""Face regions, named once for the whole toolkit (masks from landmarks come with the analysis layer)."""

from __future__ import annotations

from enum import Enum


class FaceRegion(str, Enum):
    FOREHEAD = "forehead"
    BROWS = "brows"
    GLABELLA = "glabella"  # between the brows, where AU4 (brow lowerer) acts
    EYES = "eyes"
    NOSE = "nose"
    CHEEKS = "cheeks"
    MOUTH = "mouth"
    CHIN = "chin"

    def __str__(self) -> str:
        return self.value


# iBUG 300-W 68-point index ranges (end exclusive)
LANDMARK_GROUPS: dict[str, range] = {
    "jaw": range(0, 17),
    "right_brow": range(17, 22),
    "left_brow": range(22, 27),
    "nose_bridge": range(27, 31),
    "nose_base": range(31, 36),
    "right_eye": range(36, 42),
    "left_eye": range(42, 48),
    "outer_lip": range(48, 60),
    "inner_lip": range(60, 68),
}
