"""zerodce-jax: Zero-DCE and Zero-DCE++ low-light enhancement in JAX/Flax.

The package is layered; each layer imports only from the layers above it in
this list::

  core      the maths: LE-curves, resampling, DCE-Net and its kernels, the
            four losses, metrics, research probes (pure functions)
  formats   files: weights, official snapshots (read without running code),
            checkpoints, images, ONNX/StableHLO export
  training  configs, input pipelines, the train step, the loop, datasets
  apps      what users run: enhance images and folders, video, evaluation,
            quality controls, the local web page, onnxruntime
  cli       the ``zerodce`` command, one module per verb

The names below are the public API; they are imported on first use, so
``import zerodce_jax`` (and ``zerodce --help``) does not load JAX.
"""

from __future__ import annotations

import importlib
from typing import Any

from zerodce_jax import _moved

# public name -> module that defines it
_API = {
    **{n: "zerodce_jax.core.curves" for n in (
        "apply_curves", "le_curve", "split_maps")},
    **{n: "zerodce_jax.core.losses" for n in (
        "OFFICIAL_PP_WEIGHTS", "OFFICIAL_WEIGHTS", "PAPER_WEIGHTS", "TERMS",
        "WEIGHTS", "color_constancy_official", "color_constancy_paper",
        "exposure_control_official", "exposure_control_paper",
        "illumination_smoothness_official", "illumination_smoothness_paper",
        "spatial_consistency_official", "spatial_consistency_paper",
        "total_loss")},
    **{n: "zerodce_jax.core.models" for n in (
        "ARCHITECTURES", "DCENet", "ZeroDCE", "ZeroDCEpp", "count_params",
        "make_model", "model_from_arch")},
    "convert_official": "zerodce_jax.formats.convert",
    **{n: "zerodce_jax.formats.params_io" for n in (
        "WeightsError", "load_params", "save_params")},
    "load_weights": "zerodce_jax.formats.weights",
    **{n: "zerodce_jax.apps.enhance" for n in ("Enhancer", "enhance")},
    "train": "zerodce_jax.training.loop",
}

__all__ = sorted(_API) + ["__version__"]


def _version() -> str:
  from importlib import metadata  # noqa: PLC0415
  try:
    return metadata.version("zerodce-jax")
  except metadata.PackageNotFoundError:  # a source tree that is not installed
    return "0+unknown"


def __getattr__(name: str) -> Any:
  if name in _API:
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value
  if name == "__version__":
    globals()[name] = v = _version()
    return v
  if name in _moved.OLD_MODULES or name in _moved.TOOLING:
    return _moved.old_module(name)
  raise AttributeError(f"module 'zerodce_jax' has no attribute {name!r}")


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(__all__))


_moved.install()
