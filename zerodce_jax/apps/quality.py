"""Controls beyond the paper: strength, exposure, colour, highlight
protection and noise-aware denoising, applied to curve maps computed once.

``Controls`` says what to do; ``Enhancer(..)(images, controls=...)`` and
``Enhancer.render`` do it. The plain controls (strength 1, exposure off,
colour off, denoise off) take the exact path of the paper and the official
code: with converted official weights and no flags, outputs are the
official ones.

* **strength** ``s``: the curve maps scaled (``core.curves.scale_maps``): 0
  is the input, 1 the model, above 1 stronger, each step kept monotone;
* **exposure**: ``auto`` picks the strength per scene and per signal
  (``core.exposure.plan_strengths``: the scene's key, capped where the dark
  regions' amplified noise would take over; at most
  ``core.exposure.MAX_STRENGTH``); ``mean`` is the earlier rule, one fixed
  mean brightness ``MEAN_EXPOSURE`` for every image (kept for comparison);
  a number ``E`` is a mean brightness to reach, as far as the curve goes
  (strength ``MAX_STRENGTH``);
* **colour** (0..1): how much of the output's colour cast is corrected
  (``core.colour``), by one strength per channel;
* **highlight protection**: with any control, brightening steps fade out as
  a pixel nears white (``core.curves.shoulder_weight``), so no pixel is
  pushed into clipping that was not clipped; ``protect_highlights=False``
  turns it off;
* **denoise** (0..1): ``core.denoise``, steered by the curves' own noise
  gain (``core.curves.noise_gain``) and the input's estimated noise.

This module is plain Python (no JAX), so the command line parses these
options without loading JAX.
"""

from __future__ import annotations

import dataclasses
import math

__all__ = ["Controls", "PLAIN", "MEAN_EXPOSURE", "AUTO_DENOISE",
           "AUTO_COLOUR", "HIGHLIGHT_SHOULDER", "MAX_STRENGTH",
           "AUTO_MAX_STRENGTH", "parse_strength", "parse_exposure",
           "parse_denoise", "parse_colour", "ControlError", "resolve",
           "BUNDLED_DEFAULT", "BUNDLED_VIDEO_DEFAULT"]

# `--exposure mean`: one target for every image (the rule before the
# per-scene one; docs: "Better than the paper").
MEAN_EXPOSURE = 0.45
# `--denoise auto` and `--colour auto`
AUTO_DENOISE = 1.0
AUTO_COLOUR = 0.8
# The highlight shoulder (knee, ceiling) of `core.curves.apply_at_strength`:
# brightening steps fade out between these iterate levels.
HIGHLIGHT_SHOULDER = (0.6, 0.97)
MAX_STRENGTH = 4.0  # `--strength` and `--exposure E` by hand
AUTO_MAX_STRENGTH = 2.0  # the automatic rules (core.exposure.MAX_STRENGTH)
EXPOSURE_RULES = ("auto", "mean")


class ControlError(ValueError):
  """A control value out of range; the message says which and why."""


@dataclasses.dataclass(frozen=True)
class Controls:
  """What to do beyond the model's own curves.

  Attributes:
    strength: curve strength ``s >= 0`` (1: the model). Ignored when
      ``exposure`` is set (the exposure picks the strength).
    exposure: None (off), ``"auto"`` (per scene and signal), ``"mean"``
      (the fixed mean ``MEAN_EXPOSURE``) or a mean brightness in (0, 1).
    denoise: 0 (off) to 1 (the default, ``AUTO_DENOISE``).
    colour: 0 (off) to 1: how much of the colour cast is corrected.
    protect_highlights: fade brightening out near white (the highlight
      shoulder) whenever a control is applied.
  """
  strength: float = 1.0
  exposure: float | str | None = None
  denoise: float = 0.0
  colour: float = 0.0
  protect_highlights: bool = True

  def __post_init__(self):
    if not (math.isfinite(self.strength) and 0 <= self.strength
            <= MAX_STRENGTH):
      raise ControlError(f"strength must be in [0, {MAX_STRENGTH:g}], got "
                         f"{self.strength!r}")
    e = self.exposure
    if e is not None and e not in EXPOSURE_RULES and not (
        isinstance(e, (int, float)) and math.isfinite(e) and 0 < e < 1):
      raise ControlError(f"exposure must be auto, mean or in (0, 1), got "
                         f"{e!r}")
    if not (math.isfinite(self.denoise) and 0 <= self.denoise <= 1):
      raise ControlError(f"denoise must be in [0, 1], got {self.denoise!r}")
    if not (math.isfinite(self.colour) and 0 <= self.colour <= 1):
      raise ControlError(f"colour must be in [0, 1], got {self.colour!r}")

  @property
  def plain(self) -> bool:
    """The model's own curves, nothing else (the exact official path)."""
    return (self.strength == 1 and self.exposure is None
            and not self.denoise and not self.colour)

  @property
  def shoulder(self) -> tuple[float, float] | None:
    """The highlight shoulder the curves take, or None (no protection, or
    the plain path)."""
    return (HIGHLIGHT_SHOULDER if self.protect_highlights and not self.plain
            else None)

  @property
  def needs_noise(self) -> bool:
    """Whether the input's noise is needed (denoising, and the per-signal
    exposure)."""
    return bool(self.denoise) or self.exposure == "auto"

  def exposure_rule(self) -> tuple[str, float | None, float]:
    """``(rule, target, most strength)``: ``("fixed", None, 4)`` without
    an exposure (the strength as given), ``("scene", None, 2)`` for
    ``auto``, ``("target", MEAN_EXPOSURE, 2)`` for ``mean`` and
    ``("target", E, 4)`` for a brightness by hand."""
    if self.exposure is None:
      return "fixed", None, MAX_STRENGTH
    if self.exposure == "auto":
      return "scene", None, AUTO_MAX_STRENGTH
    if self.exposure == "mean":
      return "target", MEAN_EXPOSURE, AUTO_MAX_STRENGTH
    return "target", float(self.exposure), MAX_STRENGTH


PLAIN = Controls()


def _number(text: str, what: str) -> float:
  try:
    v = float(text)
  except (TypeError, ValueError):
    raise ControlError(f"{what} wants a number, got {text!r}") from None
  if not math.isfinite(v):
    raise ControlError(f"{what} wants a finite number, got {text!r}")
  return v


def parse_strength(text: str) -> float:
  """``--strength S``: a number in [0, MAX_STRENGTH]."""
  v = _number(text, "--strength")
  if not 0 <= v <= MAX_STRENGTH:
    raise ControlError(f"--strength must be in [0, {MAX_STRENGTH:g}] (0: "
                       f"the input, 1: the model), got {text!r}")
  return v


def _off_auto_or(text: str, *, off, auto, ok, wants: str):
  """``off``, ``auto`` or a number that ``ok`` accepts; else one clear
  ``ControlError`` naming what is wanted."""
  t = str(text).strip().lower()
  if t in ("off", "auto"):
    return off if t == "off" else auto
  try:
    v = float(t)
  except ValueError:
    v = math.nan
  if not (math.isfinite(v) and ok(v)):
    raise ControlError(f"{wants}, got {text!r}")
  return v


def parse_exposure(text: str) -> float | str | None:
  """``--exposure off|auto|mean|E``: None, ``"auto"``, ``"mean"`` or E in
  (0, 1)."""
  if str(text).strip().lower() == "mean":
    return "mean"
  return _off_auto_or(text, off=None, auto="auto",
                      ok=lambda v: 0 < v < 1,
                      wants="--exposure wants off, auto, mean or a mean "
                      "brightness in (0, 1)")


def parse_colour(text: str) -> float:
  """``--colour off|auto|A``: 0, ``AUTO_COLOUR`` or A in [0, 1]."""
  return _off_auto_or(text, off=0.0, auto=AUTO_COLOUR,
                      ok=lambda v: 0 <= v <= 1,
                      wants="--colour wants off, auto or an amount in [0, 1]")


def parse_denoise(text: str) -> float:
  """``--denoise off|auto|S``: 0, ``AUTO_DENOISE`` or S in [0, 1]."""
  return _off_auto_or(text, off=0.0, auto=AUTO_DENOISE,
                      ok=lambda v: 0 <= v <= 1,
                      wants="--denoise wants off, auto or a strength in "
                      "[0, 1]")


# What the bundled models (trained by this project) use when no control is
# given: chosen from the measurements in the docs ("Better than the
# paper"). Any other weights (converted official ones included) get PLAIN,
# so their outputs stay the paper's and the official code's; `--plain`
# gives PLAIN for the bundled models too.
BUNDLED_DEFAULT = Controls(exposure="auto", denoise=AUTO_DENOISE,
                           colour=AUTO_COLOUR)
# Videos with a bundled model: exposure and colour, no denoising (the frame
# rate comes first; `--denoise auto` adds the denoiser's coarse stages,
# docs: "Video").
BUNDLED_VIDEO_DEFAULT = Controls(exposure="auto", colour=AUTO_COLOUR)


def resolve(*, strength: float | None = None, exposure: str | None = None,
            denoise: str | None = None, colour: str | None = None,
            highlights: bool = True, plain: bool = False,
            bundled: bool = False, video: bool = False) -> Controls:
  """The controls that command-line style options ask for.

  Args:
    strength, exposure, denoise, colour: the option values as given
      (None: not given; exposure, denoise and colour as text: ``off``,
      ``auto`` or a number; exposure also ``mean``).
      A strength given replaces a default exposure; a given exposure picks
      the strength itself (any strength given is then ignored).
    highlights: protect highlights.
    plain: the paper's path whatever the defaults (``--plain``).
    bundled: the weights are a bundled model, whose defaults are
      ``BUNDLED_DEFAULT`` (``BUNDLED_VIDEO_DEFAULT`` for ``video``);
      otherwise ``PLAIN``.
    video: the controls are for a video.

  Raises:
    ControlError: a bad value, or ``plain`` with another control.
  """
  given = [n for n, v in (("--strength", strength), ("--exposure", exposure),
                          ("--denoise", denoise), ("--colour", colour))
           if v is not None]
  if plain:
    if given:
      raise ControlError(f"--plain takes no {', '.join(given)}")
    return PLAIN
  base = ((BUNDLED_VIDEO_DEFAULT if video else BUNDLED_DEFAULT) if bundled
          else PLAIN)
  if exposure is None:
    # a strength given is what the user wants: a default exposure, which
    # would pick the strength itself, gives way to it
    exposure_value = base.exposure if strength is None else None
  else:
    exposure_value = parse_exposure(exposure)
  return Controls(
      strength=base.strength if strength is None else strength,
      exposure=exposure_value,
      denoise=base.denoise if denoise is None else parse_denoise(denoise),
      colour=base.colour if colour is None else parse_colour(colour),
      protect_highlights=highlights)
