"""Where weights come from: a bundled name, a weights file or a training run.

``load_weights(spec)`` is the one loader behind every ``--weights`` option:

* a bundled name (``zerodce-default``, ``zerodce-pp-default``): a weights
  file in ``zerodce_jax/assets``, trained by this project's code;
* a weights file (``params_io``: from ``zerodce convert`` or training);
* a training workdir: its ``weights.msgpack``, else the params of its newest
  complete orbax checkpoint, read as data (the architecture from its
  ``config.json``, the arrays checked against it; nothing in the folder is
  executed).
"""

from __future__ import annotations

import json
import os
from typing import Any

from zerodce_jax.core import models
from zerodce_jax.formats import params_io
from zerodce_jax.formats.params_io import WeightsError

__all__ = ["load_weights", "load_workdir", "asset_path", "BUNDLED",
           "DEFAULT_WEIGHTS", "DEFAULT_VIDEO_WEIGHTS", "SAMPLE_IMAGE"]

# Named weights shipped inside the package (trained by this project's code).
BUNDLED = {"zerodce-default": "zerodce_default.msgpack",
           "zerodce-pp-default": "zerodce_pp_default.msgpack"}
DEFAULT_WEIGHTS = "zerodce-default"
DEFAULT_VIDEO_WEIGHTS = "zerodce-pp-default"
SAMPLE_IMAGE = "sample_lowlight.jpg"


def asset_path(name: str) -> str:
  """Absolute path of a file in ``zerodce_jax/assets``."""
  return os.path.join(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))), "assets", name)


def _workdir_arch(config_path: str) -> dict[str, Any]:
  """The architecture a run's ``config.json`` names (read as data)."""
  try:
    with open(config_path) as f:
      config = json.load(f)
    name = config["model"]["arch"]
    return dict(models.ARCHITECTURES[name])
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise WeightsError(f"{config_path}: not a usable training config "
                       f"({type(e).__name__}: {str(e)[:200]})") from None


def load_workdir(workdir: str) -> tuple[Any, dict[str, Any], str]:
  """Params of a training run: its final weights, else its newest checkpoint.

  Raises:
    WeightsError: not a training run, no complete checkpoint yet, or a
      checkpoint that cannot be read or does not fit its config.
  """
  final = os.path.join(workdir, "weights.msgpack")
  if os.path.isfile(final):
    return params_io.load_params(final)
  config_path = os.path.join(workdir, "config.json")
  if not (os.path.isfile(config_path)
          and os.path.isdir(os.path.join(workdir, "checkpoints"))):
    raise WeightsError(f"{workdir}: a folder that is not a training run "
                       "(no weights.msgpack, config.json or checkpoints/)")
  arch = _workdir_arch(config_path)
  from zerodce_jax.formats import checkpoints  # noqa: PLC0415 - orbax, slow to import
  manager = checkpoints.make_manager(os.path.join(workdir, "checkpoints"),
                                     keep=10**6, async_save=False)
  try:
    restored = checkpoints.restore_latest(manager, None)
  except checkpoints.CheckpointError as e:
    raise WeightsError(str(e)) from None
  finally:
    manager.close()
  if restored is None:
    raise WeightsError(f"{workdir}: no complete checkpoint yet")
  sd, meta = restored
  try:
    raw = sd.get("params") if isinstance(sd, dict) else None
    params = params_io.check_params(_to_numpy(raw), arch)
  except WeightsError as e:
    raise WeightsError(f"{workdir}: cannot restore checkpoint step "
                       f"{meta['step']} into its config's model: {e}"
                       ) from None
  return (params, params_io.check_arch(arch),
          f"training run {workdir}, checkpoint step {meta['step']}")


def _to_numpy(tree: Any) -> Any:
  """Restored arrays (jax or numpy) as NumPy, other leaves untouched."""
  import jax  # noqa: PLC0415
  import numpy as np  # noqa: PLC0415
  return jax.tree_util.tree_map(
      lambda x: np.asarray(x) if hasattr(x, "__array__") else x, tree)


def load_weights(spec: str = DEFAULT_WEIGHTS
                 ) -> tuple[Any, dict[str, Any], str]:
  """Loads weights by bundled name (``zerodce-default``), weights file, or
  training workdir (its ``weights.msgpack``, else its newest checkpoint).

  Returns:
    ``(params, arch, source)`` as ``params_io.load_params``.

  Raises:
    WeightsError: unknown name, missing or invalid file; the message says
      which names exist and how to convert official snapshots.
  """
  if spec in BUNDLED:
    return params_io.load_params(asset_path(BUNDLED[spec]))
  if os.path.isdir(spec):
    return load_workdir(spec)
  if not os.path.exists(spec):
    raise WeightsError(
        f"{spec}: neither a weights file nor a bundled model (bundled: "
        f"{', '.join(BUNDLED)}); convert official .pth snapshots with "
        "`zerodce convert`")
  if spec.endswith((".pth", ".pt")):
    raise WeightsError(f"{spec}: a PyTorch snapshot; convert it first with "
                       f"`zerodce convert {spec} -o weights.msgpack`")
  return params_io.load_params(spec)
