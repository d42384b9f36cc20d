"""What the ``zerodce`` verbs share: parent parsers, argument types, model
loading and CPU device set-up. Nothing here imports JAX at module level, so
``zerodce --help`` stays instant."""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["fail", "memory_size", "weights_parent", "scale_factor_parent",
           "progress_parent", "load_enhancer", "set_cpu_devices"]


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
