"""Saving and loading model weights as one self-describing file.

A weights file is a msgpack document (``flax.serialization``; no pickle, so
loading never runs code) holding::

    {"format": "zerodce-jax-params", "version": 1,
     "arch": {"depth": 7, "width": 32, "iterations": 8, "separable": False},
     "source": "free text: where the weights came from",
     "params": <the flax params tree, float32, HWIO kernels>}

The architecture travels with the weights, so a file is loaded into the right
network, and a file that does not fit the requested one is refused with a
message naming both.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import flax.serialization
from flax import traverse_util
import jax
import numpy as np

from zerodce_jax.core import models
from zerodce_jax.formats import atomic

__all__ = ["save_params", "load_params", "check_arch", "check_params",
           "expected_shapes", "arch_of", "WeightsError", "FORMAT"]

FORMAT = "zerodce-jax-params"
_ARCH_KEYS = ("depth", "width", "iterations", "separable")


class WeightsError(ValueError):
  """A weights file is missing, unreadable or does not fit the model."""


def arch_of(model: models.DCENet) -> dict[str, Any]:
  """The architecture fields of a model that a weights file must match."""
  return {k: getattr(model, k) for k in _ARCH_KEYS}


def save_params(path: str, params: Any, *, arch: dict[str, Any],
                source: str = "") -> None:
  """Writes ``params`` and its architecture to ``path`` (atomically).

  Args:
    path: output file (conventionally ``*.msgpack``).
    params: the flax ``params`` tree (without the ``{"params": ...}`` wrapper).
    arch: ``depth``, ``width``, ``iterations``, ``separable``.
    source: provenance text stored with the weights.
  """
  missing = [k for k in _ARCH_KEYS if k not in arch]
  if missing:
    raise ValueError(f"arch lacks {missing}")
  doc = {
      "format": FORMAT, "version": 1,
      "arch": {k: arch[k] for k in _ARCH_KEYS},
      "source": source,
      "params": jax.tree_util.tree_map(
          lambda x: np.asarray(x, np.float32), params),
  }
  data = flax.serialization.msgpack_serialize(doc)
  atomic.write_bytes(path, data)


# Bounds on what a weights file may declare: far beyond every published
# DCE-Net, small enough that checking shapes never builds a huge model.
_ARCH_LIMITS = {"depth": (3, 99), "width": (1, 1024), "iterations": (1, 64)}
MAX_WEIGHTS_BYTES = 2**30


def check_arch(arch: Any) -> dict[str, Any]:
  """Validates an architecture read from an untrusted file.

  Returns:
    ``{"depth": int, "width": int, "iterations": int, "separable": bool}``.

  Raises:
    WeightsError: a missing/extra field, a wrong type, or a value outside
      ``_ARCH_LIMITS`` (an even depth too: the skips need an odd one).
  """
  if not isinstance(arch, dict) or set(arch) != set(_ARCH_KEYS):
    got = sorted(map(str, arch)) if isinstance(arch, dict) else type(
        arch).__name__
    raise WeightsError(f"the architecture must have exactly the fields "
                       f"{list(_ARCH_KEYS)}, got {got}")
  out: dict[str, Any] = {}
  for key, (lo, hi) in _ARCH_LIMITS.items():
    v = arch[key]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not (
        lo <= v <= hi):
      raise WeightsError(f"architecture field {key} must be an integer in "
                         f"[{lo}, {hi}], got {v!r:.40}")
    out[key] = int(v)
  if out["depth"] % 2 == 0:
    raise WeightsError(f"depth must be odd, got {out['depth']}")
  if not isinstance(arch["separable"], (bool, np.bool_)):
    raise WeightsError("architecture field separable must be a boolean")
  out["separable"] = bool(arch["separable"])
  return {k: out[k] for k in _ARCH_KEYS}


def expected_shapes(arch: dict[str, Any]) -> Any:
  """The params tree of ``arch`` as shapes (no arrays are allocated)."""
  return _expected_shapes(tuple(arch[k] for k in _ARCH_KEYS))


@functools.lru_cache(maxsize=32)
def _expected_shapes(fields: tuple[Any, ...]) -> Any:
  expected = jax.eval_shape(
      lambda: models.DCENet(**dict(zip(_ARCH_KEYS, fields))).init(
          jax.random.key(0), np.zeros((1, 16, 16, 3), np.float32)))["params"]
  return jax.tree_util.tree_map(lambda s: tuple(s.shape), expected)


def check_params(params: Any, arch: dict[str, Any]) -> Any:
  """Validates an untrusted params tree against ``arch``.

  Returns:
    The tree with float32 NumPy leaves.

  Raises:
    WeightsError: missing or extra layers, a leaf that is not a floating
      array, a shape that does not fit ``arch``, or a NaN/infinite value; the
      message names the first offending parameter.
  """
  want = expected_shapes(arch)
  want_flat = dict(_flatten(want))
  got_flat = dict(_flatten(params)) if isinstance(params, dict) else {}
  missing = sorted(set(want_flat) - set(got_flat))
  extra = sorted(set(got_flat) - set(want_flat))
  if missing or extra:
    raise WeightsError(
        f"parameters do not match the architecture {arch} it declares "
        f"(missing: {missing[:4] or 'none'}, unexpected: "
        f"{extra[:4] or 'none'})")
  for name, leaf in got_flat.items():
    if not isinstance(leaf, np.ndarray) or leaf.dtype.kind != "f":
      raise WeightsError(f"parameter {name} is a "
                         f"{getattr(leaf, 'dtype', type(leaf).__name__)}, "
                         "not a floating-point array")
    if tuple(leaf.shape) != want_flat[name]:
      raise WeightsError(f"parameter {name} has shape {tuple(leaf.shape)}, "
                         f"the architecture {arch} wants {want_flat[name]}")
    if not np.all(np.isfinite(leaf)):
      raise WeightsError(f"parameter {name} holds NaN or infinite values")
  return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), params)


def _flatten(tree: dict[Any, Any]) -> list[tuple[str, Any]]:
  """``[("conv1/kernel", leaf), ...]`` (keys of any type, as a hostile file
  may hold)."""
  return [("/".join(map(str, k)), v)
          for k, v in traverse_util.flatten_dict(tree).items()]


def load_params(path: str, *,
                expect_arch: dict[str, Any] | None = None
                ) -> tuple[Any, dict[str, Any], str]:
  """Reads a weights file written by ``save_params``.

  Args:
    path: the file.
    expect_arch: if given, the architecture the caller needs; a file of
      another architecture raises ``WeightsError``.

  Returns:
    ``(params, arch, source)``; ``params`` is a tree of float32 NumPy arrays.

  Raises:
    WeightsError: missing/unreadable file, not a zerodce-jax weights file,
      an architecture mismatch, or parameters that do not fit the
      architecture (see ``check_arch``, ``check_params``); the message names
      the file. The file is untrusted: msgpack runs no code, and its arrays
      are views of the file's own bytes, so nothing larger is allocated.
  """
  if not os.path.isfile(path):
    raise WeightsError(f"{path}: no such weights file")
  if os.path.getsize(path) > MAX_WEIGHTS_BYTES:
    raise WeightsError(f"{path}: larger than any DCE-Net weights file "
                       f"({MAX_WEIGHTS_BYTES} bytes)")
  with open(path, "rb") as f:
    data = f.read()
  try:
    doc = flax.serialization.msgpack_restore(data)
  except Exception as e:  # noqa: BLE001 - any decoding failure
    raise WeightsError(f"{path}: not a zerodce-jax weights file ({e})") from None
  if not isinstance(doc, dict) or doc.get("format") != FORMAT:
    raise WeightsError(f"{path}: not a zerodce-jax weights file "
                       "(convert official .pth files with `zerodce convert`)")
  try:
    arch = check_arch(doc.get("arch"))
    if expect_arch is not None:
      want = {k: expect_arch[k] for k in _ARCH_KEYS}
      if want != arch:
        raise WeightsError(f"weights are for {arch}, but the model wants "
                           f"{want}")
    params = check_params(doc.get("params"), arch)
  except WeightsError as e:
    raise WeightsError(f"{path}: {e}") from None
  return params, arch, str(doc.get("source", ""))


_MOVED = ("load_weights", "asset_path", "BUNDLED", "DEFAULT_WEIGHTS",
          "DEFAULT_VIDEO_WEIGHTS", "SAMPLE_IMAGE")


def __getattr__(name: str):
  """Names that moved to ``zerodce_jax.formats.weights`` (one release)."""
  if name in _MOVED:
    import importlib  # noqa: PLC0415
    import warnings  # noqa: PLC0415
    warnings.warn(f"zerodce_jax params_io.{name} moved to "
                  f"zerodce_jax.formats.weights.{name}", DeprecationWarning,
                  stacklevel=2)
    return getattr(importlib.import_module("zerodce_jax.formats.weights"),
                   name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
