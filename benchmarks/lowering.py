"""What the compiled programs look like on each platform, read on any machine.

``jax.export`` lowers a function for a platform without needing its device,
so a CPU-only machine (CI) can check what a GPU or TPU would run: the train
step and the inference function must use XLA's native convolutions there (no
``while`` loop: the CPU-tuned kernel gradient is a ``lax.scan``), while the
program lowered for CPU keeps the tuned kernels (``kernels.conv3x3``).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from zerodce_jax.apps import enhance
from zerodce_jax.core import models
from zerodce_jax import training

__all__ = ["lower_text", "op_counts", "train_step_ops", "inference_ops",
           "COUNTED_OPS"]

# StableHLO ops the lowering checks count.
COUNTED_OPS = ("while", "convolution", "dot_general", "case")


def lower_text(fn: Callable[..., Any], *args: Any, platform: str) -> str:
  """StableHLO text of ``jax.jit(fn)`` lowered for ``platform`` (``"cpu"``,
  ``"cuda"``, ``"rocm"``, ``"tpu"``) at the shapes/dtypes of ``args``
  (arrays or ``jax.ShapeDtypeStruct``s)."""
  specs = jax.tree_util.tree_map(
      lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)), args)
  exported = jax.export.export(jax.jit(fn), platforms=[platform])(*specs)
  return exported.mlir_module()


def op_counts(text: str, ops: Sequence[str] = COUNTED_OPS) -> dict[str, int]:
  """How many times each ``stablehlo.<op>`` occurs in a module's text."""
  return {op: len(re.findall(rf"\bstablehlo\.{op}\b", text)) for op in ops}


def train_step_ops(config, *, platform: str, batch: int = 2,
                   size: int = 32) -> dict[str, int]:
  """Op counts of ``training.train_step`` as ``zerodce train`` builds it from
  ``config`` (its model, losses and optimiser), lowered for ``platform`` on
  a ``[batch, size, size, 3]`` batch."""
  model = training.model_from_config(config)
  tx = training.optimizer_from_config(config)
  state = jax.eval_shape(functools.partial(
      training.create_train_state, model, tx, image_size=size),
      key=jax.random.key(0))
  step = functools.partial(training.train_step,
                           loss_fn=training.loss_fn_from_config(model, config))
  x = jax.ShapeDtypeStruct((batch, size, size, 3), jnp.float32)
  return op_counts(lower_text(step, state, x, platform=platform))


def inference_ops(model: models.DCENet, *, platform: str, batch: int = 1,
                  size: int = 64) -> dict[str, int]:
  """Op counts of the function ``zerodce enhance`` compiles for a canvas
  (``Enhancer``: the network with a validity mask, then the curves)."""
  params = jax.eval_shape(model.init, jax.random.key(0),
                          jnp.zeros((1, size, size, 3)))["params"]

  x = jax.ShapeDtypeStruct((batch, size, size, 3), jnp.float32)
  m = jax.ShapeDtypeStruct((batch, size, size, 1), jnp.float32)
  return op_counts(lower_text(enhance.masked_network(model), params, x, m,
                              platform=platform))
