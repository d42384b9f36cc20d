"""Controls beyond the paper: strength, exposure, highlight protection and
noise-aware denoising, applied to curve maps computed once.

``Controls`` says what to do; ``Enhancer(..)(images, controls=...)`` and
``Enhancer.render`` do it. The plain controls (strength 1, exposure off,
denoise off) take the exact path of the paper and the official code: with
converted official weights and no flags, outputs are the official ones.

* **strength** ``s``: the curve maps scaled (``core.curves.scale_maps``): 0
  is the input, 1 the model, above 1 stronger, each step kept monotone;
* **exposure** ``E``: per image, the strength (at most
  ``core.exposure.MAX_STRENGTH``) whose output has mean brightness ``E``
  (``core.exposure``); ``auto`` is one fixed target for
  every image, chosen from measurements (docs: "Better than the paper");
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

__all__ = ["Controls", "PLAIN", "AUTO_EXPOSURE", "AUTO_DENOISE",
           "HIGHLIGHT_SHOULDER", "MAX_STRENGTH", "parse_strength",
           "parse_exposure", "parse_denoise", "ControlError"]

# `--exposure auto`: one target for every image (docs: "Better than the
# paper" has the measurements behind it).
AUTO_EXPOSURE = 0.45
# `--denoise auto`
AUTO_DENOISE = 0.5
# The highlight shoulder (knee, ceiling) of `core.curves.apply_at_strength`:
# brightening steps fade out between these iterate levels.
HIGHLIGHT_SHOULDER = (0.6, 0.97)
MAX_STRENGTH = 4.0  # `--strength` by hand (an exposure stops at
                    # core.exposure.MAX_STRENGTH)


class ControlError(ValueError):
  """A control value out of range; the message says which and why."""


@dataclasses.dataclass(frozen=True)
class Controls:
  """What to do beyond the model's own curves.

  Attributes:
    strength: curve strength ``s >= 0`` (1: the model). Ignored when
      ``exposure`` is set (the exposure picks the strength).
    exposure: target mean brightness in (0, 1), or None (off).
    denoise: 0 (off) to 1 (strongest).
    protect_highlights: fade brightening out near white (the highlight
      shoulder) whenever a control is applied.
  """
  strength: float = 1.0
  exposure: float | None = None
  denoise: float = 0.0
  protect_highlights: bool = True

  def __post_init__(self):
    if not (math.isfinite(self.strength) and 0 <= self.strength
            <= MAX_STRENGTH):
      raise ControlError(f"strength must be in [0, {MAX_STRENGTH:g}], got "
                         f"{self.strength!r}")
    if self.exposure is not None and not (
        math.isfinite(self.exposure) and 0 < self.exposure < 1):
      raise ControlError(f"exposure must be in (0, 1), got "
                         f"{self.exposure!r}")
    if not (math.isfinite(self.denoise) and 0 <= self.denoise <= 1):
      raise ControlError(f"denoise must be in [0, 1], got {self.denoise!r}")

  @property
  def plain(self) -> bool:
    """The model's own curves, nothing else (the exact official path)."""
    return self.strength == 1 and self.exposure is None and not self.denoise

  @property
  def shoulder(self) -> tuple[float, float] | None:
    """The highlight shoulder the curves take, or None (no protection)."""
    return HIGHLIGHT_SHOULDER if self.protect_highlights else None


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


def parse_exposure(text: str) -> float | None:
  """``--exposure off|auto|E``: None, ``AUTO_EXPOSURE`` or E in (0, 1)."""
  return _off_auto_or(text, off=None, auto=AUTO_EXPOSURE,
                      ok=lambda v: 0 < v < 1,
                      wants="--exposure wants off, auto or a mean brightness "
                      "in (0, 1)")


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
BUNDLED_DEFAULT = Controls(exposure=AUTO_EXPOSURE, denoise=AUTO_DENOISE)


def resolve(*, strength: float | None = None, exposure: str | None = None,
            denoise: str | None = None, highlights: bool = True,
            plain: bool = False, bundled: bool = False) -> Controls:
  """The controls that command-line style options ask for.

  Args:
    strength, exposure, denoise: the option values as given (None: not
      given; exposure and denoise as text: ``off``, ``auto`` or a number).
      A strength given replaces a default exposure; a given exposure picks
      the strength itself (any strength given is then ignored).
    highlights: protect highlights.
    plain: the paper's path whatever the defaults (``--plain``).
    bundled: the weights are a bundled model, whose defaults are
      ``BUNDLED_DEFAULT``; otherwise ``PLAIN``.

  Raises:
    ControlError: a bad value, or ``plain`` with another control.
  """
  given = [n for n, v in (("--strength", strength), ("--exposure", exposure),
                          ("--denoise", denoise)) if v is not None]
  if plain:
    if given:
      raise ControlError(f"--plain takes no {', '.join(given)}")
    return PLAIN
  base = BUNDLED_DEFAULT if bundled else PLAIN
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
      protect_highlights=highlights)
