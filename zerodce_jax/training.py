"""Training: the optimiser, the train state and one pure train step.

``train_step(state, batch, *, loss_fn, axis_name=None)`` is the only step:
it runs eagerly (tests, ``jax.grad`` research), under ``jax.pmap`` (gradients
and metrics averaged with ``lax.pmean`` over ``axis_name``) and under
``shard_map`` alike. Batches are NHWC float32 images in [0, 1].
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from zerodce_jax import losses, models

__all__ = ["make_optimizer", "make_loss_fn", "create_train_state",
           "train_step", "TrainState"]

TrainState = train_state.TrainState
LossFn = Callable[[Any, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]


def make_optimizer(*, learning_rate: float = 1e-4, weight_decay: float = 1e-4,
                   decoupled_weight_decay: bool = False,
                   clip_norm: float | None = 0.1) -> optax.GradientTransformation:
  """Adam as the official script runs it, or AdamW.

  Official (``decoupled_weight_decay=False``): clip the gradient's global norm
  to ``clip_norm`` (``clip_grad_norm``), add ``weight_decay * param`` to it
  (PyTorch Adam's coupled L2), then Adam. With ``decoupled_weight_decay``
  the decay is applied after Adam's scaling (AdamW).

  PyTorch's clip divides by ``norm + 1e-6``, optax by ``norm``: clipped steps
  differ by ~1e-6 relative.
  """
  parts = []
  if clip_norm is not None:
    parts.append(optax.clip_by_global_norm(clip_norm))
  if decoupled_weight_decay:
    parts += [optax.scale_by_adam(),
              optax.add_decayed_weights(weight_decay)]
  else:
    if weight_decay:
      parts.append(optax.add_decayed_weights(weight_decay))
    parts.append(optax.scale_by_adam())
  parts.append(optax.scale_by_learning_rate(learning_rate))
  return optax.chain(*parts)


def make_loss_fn(model: nn.Module, *,
                 weights: Mapping[str, float] | str = "official",
                 variant: Mapping[str, str] | str = "official",
                 **loss_options: Any) -> LossFn:
  """``loss_fn(params, batch) -> (loss, terms)`` for ``model`` and the losses.

  ``loss_options`` go to ``losses.total_loss`` (``exposure_level``,
  ``color_eps``, ``extra_terms``, ...).
  """

  def loss_fn(params, batch):
    enhanced, maps = model.apply({"params": params}, batch)[:2]
    return losses.total_loss(enhanced=enhanced.astype(jnp.float32),
                             original=batch,
                             maps=maps.astype(jnp.float32), weights=weights,
                             variant=variant, **loss_options)

  return loss_fn


def create_train_state(model: nn.Module, tx: optax.GradientTransformation, *,
                       key: jax.Array, image_size: int = 64) -> TrainState:
  """Initialises params (N(0, 0.02) kernels) and the optimiser state."""
  params = model.init(key, jnp.zeros((1, image_size, image_size, 3)))["params"]
  return TrainState.create(apply_fn=model.apply, params=params, tx=tx)


def train_step(state: TrainState, batch: jax.Array, *, loss_fn: LossFn,
               axis_name: str | None = None) -> tuple[TrainState,
                                                      dict[str, jax.Array]]:
  """One optimisation step.

  Args:
    state: the train state (replicated or not: it is passed unmapped).
    batch: ``[B, H, W, 3]`` images in [0, 1] (per device under pmap).
    loss_fn: from ``make_loss_fn`` or any ``(params, batch) -> (loss, terms)``.
    axis_name: the mapped axis to average gradients and metrics over, or None.

  Returns:
    ``(new_state, metrics)`` with ``loss``, each term and ``grad_norm``.
  """
  (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params, batch)
  if axis_name is not None:
    grads = jax.lax.pmean(grads, axis_name)
    loss, terms = jax.lax.pmean((loss, terms), axis_name)
  metrics = {"loss": loss, **terms, "grad_norm": optax.global_norm(grads)}
  return state.apply_gradients(grads=grads), metrics


def fit(state: TrainState, images: jax.Array | Any, *, loss_fn: LossFn,
        steps: int, batch_size: int, seed: int = 0,
        log: Callable[[int, dict[str, float], TrainState], None] | None = None,
        log_every: int = 50) -> TrainState:
  """Single-device training loop over in-memory images (``[N, H, W, 3]``).

  Batches come from ``folder_source.batch_indices`` (deterministic per seed
  and step). ``log(step, metrics, state)`` is called every ``log_every`` steps.
  """
  from zerodce_jax import folder_source  # noqa: PLC0415

  step_fn = jax.jit(functools.partial(train_step, loss_fn=loss_fn),
                    donate_argnums=(0,))
  start = int(state.step)
  batches = folder_source.batch_indices(len(images), batch_size=batch_size,
                                        seed=seed, start_step=start)
  for step in range(start, steps):
    state, metrics = step_fn(state, jnp.asarray(images[next(batches)]))
    if log is not None and ((step + 1) % log_every == 0 or step + 1 == steps):
      m = {k: float(v) for k, v in jax.device_get(metrics).items()}
      if not all(map(math.isfinite, m.values())):
        raise FloatingPointError(f"non-finite loss at step {step + 1}: {m}")
      log(step + 1, m, state)
  return state
