"""Emotions in one canonical order (FER+ order); every table names them by word."""

from __future__ import annotations

from enum import Enum

from facexai.errors import ConfigError


class Emotion(str, Enum):
    NEUTRAL = "neutral"
    HAPPINESS = "happiness"
    SURPRISE = "surprise"
    SADNESS = "sadness"
    ANGER = "anger"
    DISGUST = "disgust"
    FEAR = "fear"
    CONTEMPT = "contempt"

    def __str__(self) -> str:
        return self.value


CANONICAL: tuple[Emotion, ...] = tuple(Emotion)
SEVEN: tuple[Emotion, ...] = CANONICAL[:7]  # seed B: FER+ without contempt


def classes_for(n: int) -> tuple[Emotion, ...]:
    """The first `n` canonical emotions: 7 (seed B, no contempt) or 8 (Barsoum)."""
    if isinstance(n, bool) or n not in (7, 8):
        raise ConfigError(f"classes must be the number 7 or 8, got {n!r}")
    return CANONICAL[:n]


def parse_emotion(name: str) -> Emotion:
    try:
        return Emotion(name.strip().lower())
    except ValueError:
        raise ConfigError(f"unknown emotion {name!r}; expected one of {', '.join(e.value for e in Emotion)}") from None
