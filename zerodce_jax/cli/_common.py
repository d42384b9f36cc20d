"""What the ``zerodce`` verbs share: parent parsers, argument types, model
loading and CPU device set-up. Nothing here imports JAX at module level, so
``zerodce --help`` stays instant."""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["fail", "memory_size", "weights_parent", "scale_factor_parent",
           "progress_parent", "cache_parent", "load_enhancer",
           "set_cpu_devices"]


def fail(prog: str, message: str, code: int = 2) -> int:
  """Prints ``prog: message`` on stderr; returns ``code`` (the exit status)."""
  print(f"{prog}: {message}", file=sys.stderr)
  return code


def memory_size(text: str) -> int | None | str:
  """``1.5G``, ``800M``, ``2048K``, a byte count, ``none`` or ``auto``."""
  t = text.strip().lower()
  if t == "auto":
    return "auto"
  if t in ("none", "0", "unlimited"):
    return None
  units = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
  scale = units.get(t[-1:], 1)
  try:
    value = float(t[:-1] if t[-1:] in units else t) * scale
  except ValueError:
    raise argparse.ArgumentTypeError(
        f"{text!r}: a size such as 1.5G, 800M, auto or none") from None
  if value < 64 * 2**20:
    raise argparse.ArgumentTypeError(f"{text!r}: at least 64M")
  return int(value)


def weights_parent(default: str | None, what: str) -> argparse.ArgumentParser:
  """``--weights``: a bundled name, a weights file or a training workdir."""
  p = argparse.ArgumentParser(add_help=False)
  p.add_argument("--weights", default=default, help=what)
  return p


def scale_factor_parent(default: int | None = 12) -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(add_help=False)
  p.add_argument("--scale-factor", type=int, default=default,
                 help="Zero-DCE++: estimate the curves on the input "
                 "down-scaled by this factor (default 12, as the official "
                 "test script)")
  return p


def progress_parent() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(add_help=False)
  p.add_argument("--no-progress", action="store_true",
                 help="no progress bar")
  return p


def cache_parent() -> argparse.ArgumentParser:
  """``--no-cache``: compile everything again, keep nothing on disk."""
  p = argparse.ArgumentParser(add_help=False)
  p.add_argument("--no-cache", action="store_true",
                 help="do not use or write the compilation cache (by "
                 "default compiled functions are kept in the user's cache "
                 "folder, so a second run skips compiling; also "
                 "ZERODCE_NO_CACHE=1)")
  return p


def controls_parent() -> argparse.ArgumentParser:
  """``--strength``, ``--exposure``, ``--denoise``, ``--highlights``,
  ``--plain`` (``apps.quality``)."""
  from zerodce_jax.apps import quality  # noqa: PLC0415 - plain Python

  def strength(text):
    try:
      return quality.parse_strength(text)
    except quality.ControlError as e:
      raise argparse.ArgumentTypeError(str(e)) from None

  def checked(parse):
    def check(text):
      try:
        parse(text)
      except quality.ControlError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
      return text
    return check

  p = argparse.ArgumentParser(add_help=False)
  g = p.add_argument_group(
      "beyond the paper", "controls applied to the curve maps (computed "
      "once). Converted official weights default to none of them, so their "
      "outputs stay the official ones; the bundled models have defaults "
      "chosen from measurements (see the docs' \"Better than the paper\")")
  g.add_argument("--strength", type=strength, metavar="S",
                 help=f"curve strength: 0 = the input, 1 = the model, up to "
                 f"{quality.MAX_STRENGTH:g} (ignored with --exposure)")
  g.add_argument("--exposure", type=checked(quality.parse_exposure),
                 metavar="off|auto|mean|E",
                 help="auto: per image, a strength chosen from the scene "
                 "(where its light is) and its signal (stopped where the "
                 "dark regions' amplified noise would dominate), at most "
                 f"{quality.AUTO_MAX_STRENGTH:g}; mean: one fixed mean "
                 f"brightness, {quality.MEAN_EXPOSURE:g}, for every image; "
                 "E in (0, 1): that mean brightness, as far as the curves "
                 f"reach (strength {quality.MAX_STRENGTH:g})")
  g.add_argument("--colour", "--color", dest="colour",
                 type=checked(quality.parse_colour), metavar="off|auto|A",
                 help="correct the colour cast, 0..1 (a strong cast, the "
                 "scene's own light, is corrected less); auto = "
                 f"{quality.AUTO_COLOUR:g}")
  g.add_argument("--denoise", type=checked(quality.parse_denoise),
                 metavar="off|auto|S",
                 help="denoise what the curves amplify, 0..1; auto = "
                 f"{quality.AUTO_DENOISE:g}")
  g.add_argument("--highlights", choices=("protect", "off"),
                 default="protect",
                 help="protect: strength above the model's is withheld from "
                 "the brightest input pixels (default)")
  g.add_argument("--plain", action="store_true",
                 help="the paper's path: the model's curves and nothing "
                 "else, whatever the defaults")
  g.add_argument("--map-scale", default="auto", metavar="auto|1|2|4",
                 type=_map_scale,
                 help="Zero-DCE: estimate the curve maps on the image "
                 "down-scaled this many times and up-sample them along its "
                 "edges (4x or 16x less network); auto: 2 with any control, "
                 "1 (every pixel, the paper) with --plain")
  return p


def _map_scale(text: str):
  t = text.strip().lower()
  if t == "auto":
    return "auto"
  if t not in ("1", "2", "4"):
    raise argparse.ArgumentTypeError(f"{text!r}: auto, 1, 2 or 4")
  return int(t)


def controls_from_args(args: argparse.Namespace, weights: str, *,
                       video: bool = False):
  """``(Controls, None)`` or ``(None, error message)``."""
  from zerodce_jax.apps import quality  # noqa: PLC0415 - plain Python
  from zerodce_jax.formats.weights import BUNDLED  # noqa: PLC0415
  try:
    return quality.resolve(
        strength=args.strength, exposure=args.exposure, denoise=args.denoise,
        colour=getattr(args, "colour", None),
        highlights=args.highlights == "protect", plain=args.plain,
        bundled=weights in BUNDLED, video=video), None
  except quality.ControlError as e:
    return None, str(e)


def load_enhancer(weights: str, scale_factor: int, *,
                  dtype: str = "float32", **enhancer_options):
  """``(Enhancer, None)`` or ``(None, error message)``."""
  from zerodce_jax.apps import enhance  # noqa: PLC0415
  from zerodce_jax.core import models  # noqa: PLC0415
  from zerodce_jax.formats import params_io, weights as weights_lib  # noqa: PLC0415
  try:
    params, arch, _ = weights_lib.load_weights(weights)
  except params_io.WeightsError as e:
    return None, str(e)
  model = models.model_from_arch(arch, dtype=dtype,
                                 scale_factor=scale_factor)
  return enhance.Enhancer(model, params, **enhancer_options), None


def set_cpu_devices(requested: int, batch_size: int) -> None:
  """Splits the CPU into ``requested`` host devices (0: one per core, capped
  to a divisor of the batch) unless XLA_FLAGS already says how many.

  Must run before JAX initialises its backends. Only the CPU platform is
  affected: on a GPU/TPU host the accelerators are still the devices used.
  Several host devices under a data-parallel step were faster than one on
  the project's 2-core machine (``benchmarks/results/train_step.json``).
  """
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_force_host_platform_device_count" in flags:
    return
  n = requested or (os.cpu_count() or 1)
  while n > 1 and batch_size % n:
    n -= 1
  if n > 1:
    os.environ["XLA_FLAGS"] = (
        f"{flags} --xla_force_host_platform_device_count={n}").strip()
