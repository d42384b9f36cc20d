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

import os
from typing import Any

import flax.serialization
import jax
import numpy as np

from zerodce_jax import models

__all__ = ["save_params", "load_params", "load_weights", "asset_path",
           "WeightsError", "FORMAT", "BUNDLED", "DEFAULT_WEIGHTS"]

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
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "wb") as f:
    f.write(data)
  os.replace(tmp, path)


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
    WeightsError: missing/unreadable file, not a zerodce-jax weights file, or
      an architecture mismatch; the message names the file.
  """
  if not os.path.isfile(path):
    raise WeightsError(f"{path}: no such weights file")
  with open(path, "rb") as f:
    data = f.read()
  try:
    doc = flax.serialization.msgpack_restore(data)
  except Exception as e:  # noqa: BLE001 - any decoding failure
    raise WeightsError(f"{path}: not a zerodce-jax weights file ({e})") from None
  if not isinstance(doc, dict) or doc.get("format") != FORMAT:
    raise WeightsError(f"{path}: not a zerodce-jax weights file "
                       "(convert official .pth files with `zerodce convert`)")
  arch = dict(doc["arch"])
  if expect_arch is not None:
    want = {k: expect_arch[k] for k in _ARCH_KEYS}
    if want != {k: arch.get(k) for k in _ARCH_KEYS}:
      raise WeightsError(f"{path}: weights are for {arch}, but the model "
                         f"wants {want}")
  params = doc["params"]
  expected = jax.eval_shape(
      lambda: models.DCENet(**arch).init(
          jax.random.key(0), np.zeros((1, 16, 16, 3), np.float32)))["params"]
  exp_shapes = jax.tree_util.tree_map(lambda s: tuple(s.shape), expected)
  got_shapes = jax.tree_util.tree_map(lambda a: tuple(np.shape(a)), params)
  if exp_shapes != got_shapes:
    raise WeightsError(f"{path}: parameter shapes do not match the "
                       f"architecture {arch} it declares")
  return params, arch, str(doc.get("source", ""))


# Named weights shipped inside the package (trained by this project's code).
BUNDLED = {"zerodce-default": "zerodce_default.msgpack"}
DEFAULT_WEIGHTS = "zerodce-default"
SAMPLE_IMAGE = "sample_lowlight.jpg"


def asset_path(name: str) -> str:
  """Absolute path of a file in ``zerodce_jax/assets``."""
  return os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets",
                      name)


def _load_workdir(workdir: str) -> tuple[Any, dict[str, Any], str]:
  """Params of a training run: its final weights, else its newest checkpoint."""
  final = os.path.join(workdir, "weights.msgpack")
  if os.path.isfile(final):
    return load_params(final)
  config_path = os.path.join(workdir, "config.json")
  if not (os.path.isfile(config_path)
          and os.path.isdir(os.path.join(workdir, "checkpoints"))):
    raise WeightsError(f"{workdir}: a folder that is not a training run "
                       "(no weights.msgpack, config.json or checkpoints/)")
  import json  # noqa: PLC0415
  import ml_collections  # noqa: PLC0415
  from zerodce_jax import checkpoints, training  # noqa: PLC0415
  with open(config_path) as f:
    config = ml_collections.ConfigDict(json.load(f))
  model = training.model_from_config(config)
  state = training.create_train_state(
      model, training.optimizer_from_config(config), key=jax.random.key(0),
      image_size=16)
  manager = checkpoints.make_manager(os.path.join(workdir, "checkpoints"),
                                     keep=10**6, async_save=False)
  try:
    restored = checkpoints.restore_latest(manager, training.state_dict(state))
  except checkpoints.CheckpointError as e:
    raise WeightsError(str(e)) from None
  finally:
    manager.close()
  if restored is None:
    raise WeightsError(f"{workdir}: no complete checkpoint yet")
  sd, meta = restored
  return (jax.device_get(sd["params"]), arch_of(model),
          f"training run {workdir}, checkpoint step {meta.get('step')}")


def load_weights(spec: str = DEFAULT_WEIGHTS
                 ) -> tuple[Any, dict[str, Any], str]:
  """Loads weights by bundled name (``zerodce-default``), weights file, or
  training workdir (its ``weights.msgpack``, else its newest checkpoint).

  Returns:
    ``(params, arch, source)`` as ``load_params``.

  Raises:
    WeightsError: unknown name, missing or invalid file; the message says
      which names exist and how to convert official snapshots.
  """
  if spec in BUNDLED:
    return load_params(asset_path(BUNDLED[spec]))
  if os.path.isdir(spec):
    return _load_workdir(spec)
  if not os.path.exists(spec):
    raise WeightsError(
        f"{spec}: neither a weights file nor a bundled model (bundled: "
        f"{', '.join(BUNDLED)}); convert official .pth snapshots with "
        "`zerodce convert`")
  if spec.endswith((".pth", ".pt")):
    raise WeightsError(f"{spec}: a PyTorch snapshot; convert it first with "
                       f"`zerodce convert {spec} -o weights.msgpack`")
  return load_params(spec)
