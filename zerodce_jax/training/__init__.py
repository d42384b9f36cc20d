"""Training: configs (``config_utils``), input pipelines
(``input_pipeline``), the optimiser and the pure train step (``step``), the
loop with checkpoints and metrics (``loop``, ``metric_writers``) and the
papers' datasets as TFDS builders (``datasets``).

The names of ``step`` and ``loop`` are importable from here
(``from zerodce_jax.training import train_step, train``).
"""

from __future__ import annotations

import importlib
from typing import Any

_STEP = ("make_optimizer", "make_loss_fn", "create_train_state", "train_step",
         "make_parallel_step", "TrainState", "place_images",
         "replicate_state", "PARALLEL_CHOICES", "model_from_config",
         "loss_fn_from_config", "optimizer_from_config", "state_dict",
         "local_copy")
_LOOP = ("train", "load_training_images")

__all__ = list(_STEP + _LOOP)


def __getattr__(name: str) -> Any:
  if name in _STEP:
    return getattr(importlib.import_module("zerodce_jax.training.step"), name)
  if name in _LOOP:
    return getattr(importlib.import_module("zerodce_jax.training.loop"), name)
  if name == "train_and_evaluate":
    import warnings  # noqa: PLC0415
    warnings.warn("training.train_and_evaluate is now training.train (it "
                  "trains; it evaluates nothing)", DeprecationWarning,
                  stacklevel=2)
    return importlib.import_module("zerodce_jax.training.loop").train
  raise AttributeError(
      f"module 'zerodce_jax.training' has no attribute {name!r}")
