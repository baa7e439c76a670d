"""Facial Action Coding System facts, stated once: the face regions, where each action unit (AU) acts,
and each emotion's prototype AUs (Ekman and Friesen's FACS prototypes, as summarised below).

The synthetic faces draw each AU only inside its regions, the analysis scores methods against the
regions an emotion's AUs move, and the report compares real faces with the same table.

Prototypes (which regions move for which emotion): happiness AU6+12 (cheeks, mouth corners up);
sadness AU1+4+15 (inner brows up, brows lowered, mouth corners down); surprise AU1+2+5+26 (brows
up, upper lids up, jaw drop); fear AU1+2+4+5+7+20+26 (brows up and together, lids up, lips
stretched, jaw drop); anger AU4+5+7+23 (brows down and together, lids tight, lips pressed);
disgust AU9+15+16 (nose wrinkle, lip corners down, lower lip down); neutral: none.
"""

from __future__ import annotations

from collections import Counter
from enum import Enum

from facexai.emotions import SEVEN, Emotion
from facexai.errors import ConfigError


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


AU_NAMES: tuple[str, ...] = tuple(f"AU{i}" for i in (1, 2, 4, 5, 6, 7, 9, 12, 15, 16, 20, 23, 26))

R = FaceRegion
# Where each AU moves the face (and where the synthetic renderer draws it; tested).
AU_REGIONS: dict[str, tuple[FaceRegion, ...]] = {
    "AU1": (R.FOREHEAD, R.BROWS),  # inner brow raiser, with central forehead wrinkles
    "AU2": (R.FOREHEAD, R.BROWS),  # outer brow raiser, with lateral forehead wrinkles
    "AU4": (R.GLABELLA, R.BROWS),  # brow lowerer: brows down and together, vertical furrows
    "AU5": (R.EYES,),  # upper lid raiser
    "AU6": (R.CHEEKS,),  # cheek raiser: bulge highlight and crease under the eyes
    "AU7": (R.EYES,),  # lid tightener: lower lid up
    "AU9": (R.NOSE,),  # nose wrinkler: bridge wrinkles, nostrils up
    "AU12": (R.MOUTH,),  # lip corner puller
    "AU15": (R.MOUTH,),  # lip corner depressor
    "AU16": (R.MOUTH,),  # lower lip depressor
    "AU20": (R.MOUTH,),  # lip stretcher
    "AU23": (R.MOUTH,),  # lip tightener: thin lips
    "AU26": (R.MOUTH, R.CHIN),  # jaw drop: open mouth, chin lower
}

# FACS prototypes (module docstring), in SEVEN order.
PROTOTYPES: dict[Emotion, tuple[str, ...]] = {
    Emotion.NEUTRAL: (),
    Emotion.HAPPINESS: ("AU6", "AU12"),
    Emotion.SURPRISE: ("AU1", "AU2", "AU5", "AU26"),
    Emotion.SADNESS: ("AU1", "AU4", "AU15"),
    Emotion.ANGER: ("AU4", "AU5", "AU7", "AU23"),
    Emotion.DISGUST: ("AU9", "AU15", "AU16"),
    Emotion.FEAR: ("AU1", "AU2", "AU4", "AU5", "AU7", "AU20", "AU26"),
}


def regions_of(aus: tuple[str, ...]) -> set[FaceRegion]:
    return {r for au in aus for r in AU_REGIONS[au]}


def _neutral_evidence() -> set[FaceRegion]:
    """Regions moved by more than half of the six expressive prototypes: where stillness is most telling."""
    moved = Counter(r for aus in PROTOTYPES.values() if aus for r in regions_of(aus))
    expressive = sum(1 for aus in PROTOTYPES.values() if aus)
    return {r for r, c in moved.items() if c > expressive / 2}


def evidence() -> dict[str, dict[str, list[str]]]:
    """{emotion: {"regions": [...], "aus": [...]}}: the regions each emotion's prototype AUs move.

    Neutral has no AUs; its evidence is the regions moved by most other emotions (mouth, brows).
    """
    out = {}
    for emo in SEVEN:
        aus = PROTOTYPES[emo]
        regions = regions_of(aus) if aus else _neutral_evidence()
        out[emo.value] = {"regions": [r.value for r in FaceRegion if r in regions], "aus": list(aus)}
    return out


def parse_regions(text: str) -> tuple[FaceRegion, ...]:
    """"all" or comma-separated region names (any case) -> regions, in the order given."""
    names = [r.strip().lower() for r in text.split(",")]
    if names == ["all"]:
        return tuple(FaceRegion)
    known = [r.value for r in FaceRegion]
    if unknown := [n for n in names if n not in known]:
        raise ConfigError(f"unknown region {unknown[0]!r} in {text!r}; expected all or some of {', '.join(known)}")
    return tuple(FaceRegion(n) for n in names)
