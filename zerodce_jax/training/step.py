"""The optimiser, the train state and one pure train step.

``train_step(state, batch, *, loss_fn, axis_name=None)`` is the only step:
it runs eagerly (tests, ``jax.grad`` research), under ``jax.pmap`` (gradients
and metrics averaged with ``lax.pmean`` over ``axis_name``) and under
``jax.shard_map(..., check_vma=False)`` alike (pmap's semantics: with
``check_vma=True`` JAX would already sum the gradients of the unmapped params
over the axis, and the step's pmean would not make them a mean). Batches are NHWC float32 images in [0, 1].
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from zerodce_jax.core import losses, models

__all__ = ["make_optimizer", "make_loss_fn", "create_train_state",
           "train_step", "make_parallel_step", "TrainState", "place_images",
           "replicate_state", "PARALLEL_CHOICES", "model_from_config",
           "loss_fn_from_config", "optimizer_from_config", "state_dict",
           "local_copy", "in_lockstep"]

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


PARALLEL_CHOICES = ("auto", "shard_map", "pmap")
StepFn = Callable[..., tuple[TrainState, dict[str, jax.Array]]]


def make_parallel_step(loss_fn: LossFn, *, devices: Sequence[Any],
                       parallel: str = "auto",
                       make_batch: Callable[..., jax.Array] | None = None
                       ) -> StepFn:
  """``train_step`` data-parallel over ``devices``, state donated.

  Args:
    loss_fn: as ``train_step``.
    devices: this process's devices to use (all processes use the same
      number; with several processes the mesh spans every process's).
    parallel: ``"shard_map"`` (``jax.jit`` of ``jax.shard_map`` over a
      one-axis mesh ``"batch"``, the state replicated; single- and
      multi-host), ``"pmap"`` (``jax.pmap``, one process and the host
      pipeline only) or ``"auto"`` (shard_map: ``jax.pmap`` is in
      maintenance mode since JAX 0.8 and itself built on shard_map). Both
      average gradients and metrics with ``lax.pmean`` in ``train_step``.
    make_batch: the device-side input pipeline,
      ``make_batch(images, idx, *, step, first_position) -> batch`` (e.g.
      ``input_pipeline.device_batch`` with the config's options bound); the
      step then takes indices instead of images.

  Returns:
    ``step(state, data, images=None) -> (state, metrics)``. ``data`` is this
    process's share of the global batch, ``[len(devices), per_device, H, W,
    3]`` float32 images, or with ``make_batch`` int32 indices ``[len(devices),
    per_device]`` into ``images`` (from ``place_images``). One device in one
    process: plain ``jax.jit`` of the step on ``data[0]`` (cheaper than a
    one-device mesh on CPU: README, "Training").
  """
  if parallel not in PARALLEL_CHOICES:
    raise ValueError(f"parallel must be one of {PARALLEL_CHOICES}, got "
                     f"{parallel!r}")
  devices = list(devices)
  n_proc = jax.process_count()

  def local_step(state, data, images, *, axis_name, per_device):
    if make_batch is None:
      batch = data
    else:
      first = (0 if axis_name is None
               else jax.lax.axis_index(axis_name) * per_device)
      batch = make_batch(images, data, step=state.step,
                         first_position=first)
    return train_step(state, batch, loss_fn=loss_fn, axis_name=axis_name)

  if len(devices) == 1 and n_proc == 1:
    one = jax.jit(functools.partial(local_step, axis_name=None,
                                    per_device=None), donate_argnums=(0,))
    return lambda state, data, images=None: one(state, data[0], images)

  if parallel == "pmap":
    if make_batch is not None or n_proc > 1:
      raise ValueError("parallel='pmap' runs the host input pipeline on one "
                       "process; use 'shard_map' for the device pipeline "
                       "or several processes")
    p_step = jax.pmap(functools.partial(local_step, axis_name="batch",
                                        per_device=None),
                      axis_name="batch", in_axes=(None, 0, None),
                      out_axes=(None, None), donate_argnums=(0,),
                      devices=devices)
    return in_lockstep(lambda state, data, images=None:
                       p_step(state, data, images), devices)

  from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: PLC0415
  mesh = _mesh(devices)
  rows = NamedSharding(mesh, P("batch"))
  cache: dict[tuple[int, ...], Callable] = {}

  def step(state, data, images=None):
    data = np.asarray(data)
    per_device = data.shape[1]
    fn = cache.get(data.shape)
    if fn is None:
      fn = cache[data.shape] = jax.jit(jax.shard_map(
          functools.partial(local_step, axis_name="batch",
                            per_device=per_device),
          mesh=mesh, in_specs=(P(), P("batch"), P()), out_specs=(P(), P()),
          check_vma=False), donate_argnums=(0,))
    flat = data.reshape((-1,) + data.shape[2:])
    return fn(state, jax.make_array_from_process_local_data(rows, flat),
              images)

  return in_lockstep(step, devices)


def in_lockstep(step: Callable, devices: Sequence[Any]) -> Callable:
  """``step``, waiting for its outputs before it returns when it runs
  collectives over several CPU devices; ``step`` itself otherwise.

  XLA:CPU runs every host device's program on one pool of threads, as many
  as cores, and a device waiting in an all-reduce holds its thread. With the
  host dispatching steps ahead (JAX's asynchronous dispatch), a 2-core
  machine could abort after a few hundred fast steps ("Termination timeout
  for all reduce ... Expected 2 threads to join the rendezvous"): waiting
  for each step costs little there, and the host input pipeline still
  prefetches in its own thread. Accelerators keep dispatching ahead.
  """
  devices = list(devices)
  if len(devices) < 2 or devices[0].platform != "cpu":
    return step

  def waited(*args, **kwargs):
    return jax.block_until_ready(step(*args, **kwargs))

  return waited


def _mesh(local_devices: Sequence[Any]):
  """A one-axis ``"batch"`` mesh: ``local_devices`` on one process; on
  several, each process's first ``len(local_devices)`` devices, in process
  order (so slice ``p`` of the global batch lands on process ``p``)."""
  from jax.sharding import Mesh  # noqa: PLC0415
  if jax.process_count() == 1:
    return Mesh(np.array(local_devices), ("batch",))
  n = len(local_devices)
  by_proc: dict[int, list] = {}
  for d in jax.devices():
    by_proc.setdefault(d.process_index, []).append(d)
  return Mesh(np.array([d for p in sorted(by_proc) for d in by_proc[p][:n]]),
              ("batch",))


def place_images(images: np.ndarray, devices: Sequence[Any]) -> jax.Array:
  """The uint8 training set on every device of the step's mesh (for
  ``make_parallel_step(make_batch=...)``): one copy per device."""
  from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: PLC0415
  devices = list(devices)
  if len(devices) == 1 and jax.process_count() == 1:
    return jax.device_put(images, devices[0])
  return jax.make_array_from_process_local_data(
      NamedSharding(_mesh(devices), P()), np.asarray(images))


def replicate_state(state: TrainState, devices: Sequence[Any]) -> TrainState:
  """``state`` as arrays replicated over the step's mesh (needed with several
  processes, where every process holds the same host values)."""
  from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: PLC0415
  if jax.process_count() == 1:
    return state
  rep = NamedSharding(_mesh(list(devices)), P())
  return jax.tree_util.tree_map(
      lambda x: jax.make_array_from_process_local_data(rep, np.asarray(x))
      if isinstance(x, (jax.Array, np.ndarray)) else x, state)


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
    grads, (loss, terms) = jax.lax.pmean((grads, (loss, terms)), axis_name)
  metrics = {"loss": loss, **terms, "grad_norm": optax.tree.norm(grads)}
  return state.apply_gradients(grads=grads), metrics


# --------------------------------------------------------------------------
# From a config file.
# --------------------------------------------------------------------------
def model_from_config(config) -> nn.Module:
  """The ``DCENet`` a config describes."""
  arch = models.ARCHITECTURES[config.model.arch]
  dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[config.model.dtype]
  return models.make_model(
      config.model.arch, bias_init=config.model.bias_init,
      kernel_init=config.model.get("kernel_init", "normal"), dtype=dtype,
      scale_factor=config.model.scale_factor if arch["separable"] else 1)


def loss_fn_from_config(model: nn.Module, config) -> LossFn:
  """``make_loss_fn`` with the config's loss section."""
  lc = config.loss
  return make_loss_fn(model, weights=dict(lc.weights), variant=lc.variant,
                      exposure_level=lc.exposure_level,
                      exposure_patch=lc.exposure_patch,
                      spatial_region=lc.spatial_region,
                      color_eps=lc.color_eps)


def optimizer_from_config(config) -> optax.GradientTransformation:
  o = config.optim
  return make_optimizer(learning_rate=o.learning_rate,
                        weight_decay=o.weight_decay,
                        decoupled_weight_decay=o.decoupled_weight_decay,
                        clip_norm=o.clip_norm if o.clip_norm > 0 else None)


def local_copy(tree: Any) -> Any:
  """Host NumPy copies of a pytree's arrays; a replicated array spanning
  several processes is read from this process's own copy."""
  def one(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return np.asarray(x.addressable_data(0))
    return jax.device_get(x)
  return jax.tree_util.tree_map(one, tree)


def state_dict(state: TrainState) -> dict[str, Any]:
  """What a checkpoint holds of a train state."""
  return {"step": jnp.asarray(state.step, jnp.int32), "params": state.params,
          "opt_state": state.opt_state}
