"""Training: the optimiser, the train state and one pure train step.

``train_step(state, batch, *, loss_fn, axis_name=None)`` is the only step:
it runs eagerly (tests, ``jax.grad`` research), under ``jax.pmap`` (gradients
and metrics averaged with ``lax.pmean`` over ``axis_name``) and under
``jax.shard_map(..., check_vma=False)`` alike (pmap's semantics: with
``check_vma=True`` JAX would already sum the gradients of the unmapped params
over the axis, and the step's pmean would not make them a mean). Batches are NHWC float32 images in [0, 1].
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from zerodce_jax import losses, models

__all__ = ["make_optimizer", "make_loss_fn", "create_train_state",
           "train_step", "make_parallel_step", "TrainState", "place_images",
           "replicate_state", "PARALLEL_CHOICES",
           "train_and_evaluate",
           "model_from_config", "loss_fn_from_config"]

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
    return lambda state, data, images=None: p_step(state, data, images)

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

  return step


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
    grads = jax.lax.pmean(grads, axis_name)
    loss, terms = jax.lax.pmean((loss, terms), axis_name)
  metrics = {"loss": loss, **terms, "grad_norm": optax.tree.norm(grads)}
  return state.apply_gradients(grads=grads), metrics


# --------------------------------------------------------------------------
# The training loop.
# --------------------------------------------------------------------------
def model_from_config(config) -> nn.Module:
  """The ``DCENet`` a config describes."""
  arch = models.ARCHITECTURES[config.model.arch]
  dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[config.model.dtype]
  return models.make_model(
      config.model.arch, bias_init=config.model.bias_init, dtype=dtype,
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


def load_training_images(config, *, report=print):
  """The training images, uint8 ``[N, S, S, 3]`` (every process loads all;
  each takes its slice of every global batch)."""
  from zerodce_jax import input_pipeline as ip  # noqa: PLC0415
  size = config.data.image_size
  if config.data.source == "synthetic":
    return ip.synthetic_images(config.data.num_synthetic, size,
                               seed=config.seed)
  if config.data.source == "folder":
    images, _ = ip.load_resized(ip.list_images(config.data.path), size,
                                report=report)
    return images
  if config.data.source.startswith("tfds:"):
    from zerodce_jax import datasets  # noqa: PLC0415
    name = config.data.source[len("tfds:"):]
    if not config.data.path:
      raise FileNotFoundError("set --config.data.path to the TFDS data_dir "
                              f"where `zerodce data build {name}` wrote it")
    source = datasets.data_source(name, data_dir=config.data.path,
                                  split=config.data.split)
    return np.stack([ip.resize_uint8(source[i]["image"].astype(np.float32)
                                     / 255.0, size)
                     for i in range(len(source))])
  raise ValueError(f"unknown data source {config.data.source!r} (folder, "
                   "synthetic, tfds:NAME)")


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


def _sample_grid(model, params, images: np.ndarray) -> np.ndarray:
  """Rows of input | enhanced for a few images, float ``[H*n, 2W+8, 3]``."""
  from zerodce_jax import enhance_files  # noqa: PLC0415
  x = jnp.asarray(images.astype(np.float32) / 255.0)
  y = np.asarray(jax.jit(model.apply)({"params": params}, x)[0], np.float32)
  return np.concatenate([enhance_files.side_by_side(a, b) for a, b in
                         zip(np.asarray(x), y)], axis=0)


def train_and_evaluate(config, workdir: str, *,
                       loss_fn: LossFn | None = None,
                       progress: bool = True,
                       stop_after: int | None = None,
                       time_limit_s: float | None = None) -> TrainState:
  """Trains as ``config`` says, resuming from ``workdir`` if it holds a run.

  Writes to ``workdir``: ``config.json`` (resolved config),
  ``checkpoints/<step>/`` (orbax), ``metrics.jsonl``, ``metrics.csv``,
  ``tensorboard/``, ``samples/step_<N>.png`` and, at the end,
  ``weights.msgpack`` (for ``zerodce enhance --weights``).

  Args:
    config: a config from ``configs/`` (ConfigDict).
    workdir: the run's folder.
    loss_fn: a custom ``(params, batch) -> (loss, terms)`` replacing the
      configured loss (research use).
    progress: show a progress bar.
    stop_after: stop (after checkpointing) once this step is reached, as an
      interruption would; for tests.
    time_limit_s: stop (after checkpointing) at the first logged step after
      this many seconds of training (a lease on an accelerator); the run
      resumes from there when called again.

  Returns:
    The final train state (host arrays).

  Raises:
    FloatingPointError: a non-finite loss; the message names the steps and
      the last good checkpoint (which is kept).
    checkpoints.CheckpointError: an unusable checkpoint in ``workdir``.
  """
  import os  # noqa: PLC0415
  import time  # noqa: PLC0415

  from tqdm import tqdm  # noqa: PLC0415

  from zerodce_jax import checkpoints, image_io, input_pipeline  # noqa: PLC0415
  from zerodce_jax import metric_writers, params_io  # noqa: PLC0415
  from zerodce_jax import config_utils  # noqa: PLC0415

  os.makedirs(workdir, exist_ok=True)
  lead = jax.process_index() == 0
  if lead:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config_utils.config_to_json(config))

  n_local = jax.local_device_count()
  n_proc = jax.process_count()
  if config.batch_size % (n_proc * n_local):
    raise ValueError(f"batch_size {config.batch_size} does not split over "
                     f"{n_proc} processes x {n_local} devices")
  say = (lambda m: tqdm.write(m)) if progress else print
  say(f"training on {n_proc} process(es) x {n_local} "
      f"{jax.local_devices()[0].platform} device(s), global batch "
      f"{config.batch_size}")
  images = load_training_images(config, report=say)
  steps_per_epoch = len(images) // config.batch_size
  total = (config.num_steps if config.num_steps > 0
           else config.num_epochs * steps_per_epoch)

  model = model_from_config(config)
  loss_fn = loss_fn or loss_fn_from_config(model, config)
  state = create_train_state(model, optimizer_from_config(config),
                             key=jax.random.key(config.seed),
                             image_size=config.data.crop_size
                             or config.data.image_size)
  manager = checkpoints.make_manager(os.path.join(workdir, "checkpoints"),
                                     keep=config.keep_checkpoints)
  restored = checkpoints.restore_latest(manager, state_dict(state))
  if restored is not None:
    sd, meta = restored
    if meta.get("seed") != config.seed:
      raise checkpoints.CheckpointError(
          f"{workdir}: checkpoint was trained with seed {meta.get('seed')}, "
          f"the config says {config.seed}; resuming would not reproduce the "
          "run. Use the same seed or a new --workdir.")
    state = state.replace(step=sd["step"], params=sd["params"],
                          opt_state=sd["opt_state"])
    say(f"resumed from {workdir}/checkpoints/{int(state.step)}")
  start = int(state.step)

  devices = jax.local_devices()
  on_device = config.data.pipeline == "device"
  if config.data.pipeline not in ("host", "device"):
    raise ValueError(f"data.pipeline must be 'host' or 'device', got "
                     f"{config.data.pipeline!r}")
  make_batch = None
  if on_device:
    make_batch = functools.partial(
        input_pipeline.device_batch, seed=config.seed,
        crop_size=config.data.crop_size,
        random_flip=config.data.random_flip,
        exposure_mixing=config.data.exposure_mixing)
  p_step = make_parallel_step(loss_fn, devices=devices,
                              parallel=config.parallel, make_batch=make_batch)
  state = replicate_state(state, devices)
  resident = place_images(images, devices) if on_device else None
  writer = metric_writers.MetricWriter(workdir, enabled=lead)
  samples = images[:config.num_samples]
  meta = {"seed": config.seed, "arch": config.model.arch,
          "images": len(images), "batch_size": config.batch_size}

  def checkpoint(step):
    checkpoints.save(manager, step, state_dict(state),
                     {**meta, "step": step, "data_position": step})

  split = dict(batch_size=config.batch_size, seed=config.seed,
               start_step=start, num_devices=n_local,
               process_index=jax.process_index(), process_count=n_proc)
  if on_device:
    data = input_pipeline.index_batches(len(images), **split)
  else:
    data = input_pipeline.prefetch(input_pipeline.batches(
        images, random_flip=config.data.random_flip,
        crop_size=config.data.crop_size,
        exposure_mixing=config.data.exposure_mixing, **split),
        depth=config.data.prefetch)
  bar = tqdm(total=total, initial=start, unit="step", disable=not progress,
             dynamic_ncols=True)
  last_good = start
  t0, seen = time.time(), 0
  step = start
  try:
    while step < total:
      batch = next(data)
      state, metrics = p_step(state, batch, resident)
      step += 1
      seen += config.batch_size
      bar.update(1)
      out_of_time = (time_limit_s is not None and step % config.log_every == 0
                     and time.time() - t0 > time_limit_s)
      if out_of_time:
        stop_after = step
      check = (step % config.log_every == 0 or step == total
               or step % config.checkpoint_every == 0
               or (stop_after is not None and step >= stop_after))
      if check:
        m = {k: float(v) for k, v in local_copy(metrics).items()}
        if not all(math.isfinite(v) for v in m.values()):
          raise FloatingPointError(
              f"non-finite loss between steps {last_good + 1} and {step}: "
              f"{m}. The last good checkpoint is kept in "
              f"{workdir}/checkpoints; lower the learning rate or check the "
              "data.")
        last_good = step
        m["images_per_s"] = seen / (time.time() - t0)
        writer.write(step, m)
        bar.set_postfix(loss=f"{m['loss']:.4f}",
                        img_s=f"{m['images_per_s']:.1f}")
        if step % config.checkpoint_every == 0 or step == total or (
            stop_after is not None and step >= stop_after):
          checkpoint(step)
      if (lead and config.sample_every and step % config.sample_every == 0
          and len(samples)):
        os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
        image_io.write_image(
            os.path.join(workdir, "samples", f"step_{step:07d}.png"),
            _sample_grid(model, local_copy(state.params), samples),
            image_io.ImageInfo(bit_depth=8, gray=False, alpha=None,
                               format="png"))
      if stop_after is not None and step >= stop_after:
        break
  finally:
    bar.close()
    manager.wait_until_finished()
    manager.close()
    writer.close()
  if lead and step >= total:
    params_io.save_params(
        os.path.join(workdir, "weights.msgpack"), local_copy(state.params),
        arch=params_io.arch_of(model),
        source=f"zerodce-jax training run {os.path.abspath(workdir)}, "
        f"config {config.model.arch}/{config.loss.variant}, step {step}")
  return local_copy(state)
