"""The training loop: data in, checkpoints, metrics, samples and weights out.

``train(config, workdir)`` is what ``zerodce train`` runs: it resumes from
the newest complete checkpoint in ``workdir``, feeds the data-parallel step
of ``zerodce_jax.training.step`` from the host or the device input pipeline,
logs, checkpoints, stops on a non-finite loss and writes the final weights.
"""

from __future__ import annotations

import functools
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from zerodce_jax.formats import checkpoints, image_io, params_io
from zerodce_jax.training import config_utils, input_pipeline, metric_writers
from zerodce_jax.training.step import (LossFn, TrainState, create_train_state,
                                       local_copy, loss_fn_from_config,
                                       make_parallel_step, model_from_config,
                                       optimizer_from_config, place_images,
                                       replicate_state, state_dict)

__all__ = ["train", "load_training_images"]


def load_training_images(config, *, report=print):
  """The training images, uint8 ``[N, S, S, 3]`` (every process loads all;
  each takes its slice of every global batch)."""
  size = config.data.image_size
  if config.data.source == "synthetic":
    return input_pipeline.synthetic_images(config.data.num_synthetic, size,
                                           seed=config.seed)
  if config.data.source == "folder":
    try:
      paths = image_io.list_images(config.data.path)
    except FileNotFoundError as e:
      raise FileNotFoundError(f"{e} (set --config.data.path)") from None
    images, _ = input_pipeline.load_resized(paths, size, report=report)
    return images
  if config.data.source.startswith("tfds:"):
    from zerodce_jax.training import datasets  # noqa: PLC0415
    name = config.data.source[len("tfds:"):]
    if not config.data.path:
      raise FileNotFoundError("set --config.data.path to the TFDS data_dir "
                              f"where `zerodce data build {name}` wrote it")
    source = datasets.data_source(name, data_dir=config.data.path,
                                  split=config.data.split)
    return np.stack([
        input_pipeline.resize_uint8(
            source[i]["image"].astype(np.float32) / 255.0, size)
        for i in range(len(source))])
  raise ValueError(f"unknown data source {config.data.source!r} (folder, "
                   "synthetic, tfds:NAME)")


def _sample_grid(model, params, images: np.ndarray) -> np.ndarray:
  """Rows of input | enhanced for a few images, float ``[H*n, 2W+8, 3]``."""
  x = jnp.asarray(images.astype(np.float32) / 255.0)
  y = np.asarray(jax.jit(model.apply)({"params": params}, x)[0], np.float32)
  return np.concatenate([image_io.side_by_side(a, b) for a, b in
                         zip(np.asarray(x), y)], axis=0)


def train(config, workdir: str, *, loss_fn: LossFn | None = None,
          progress: bool = True, stop_after: int | None = None,
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
  # "keep": the official loader's last partial batch (drop_last=False); a
  # config without the field (older runs' config.json) drops it.
  last_batch = config.data.get("last_batch", "drop")
  steps_per_epoch = input_pipeline.steps_per_epoch(
      len(images), batch_size=config.batch_size, last_batch=last_batch)
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
    if meta.get("last_batch", "drop") != last_batch:
      raise checkpoints.CheckpointError(
          f"{workdir}: checkpoint was trained with data.last_batch="
          f"{meta.get('last_batch', 'drop')!r}, the config says "
          f"{last_batch!r}; the batches after step {int(sd['step'])} would "
          "differ. Use the same setting or a new --workdir.")
    # host copies: the restored arrays sit on one device, and the step may
    # run on another number of devices than the run that saved them
    sd = jax.device_get(sd)
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
          "images": len(images), "batch_size": config.batch_size,
          "last_batch": last_batch}

  def checkpoint(step):
    checkpoints.save(manager, step, state_dict(state),
                     {**meta, "step": step, "data_position": step})

  split = dict(batch_size=config.batch_size, seed=config.seed,
               start_step=start, num_devices=n_local,
               process_index=jax.process_index(), process_count=n_proc,
               last_batch=last_batch)
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
      seen += np.shape(batch)[0] * np.shape(batch)[1] * n_proc
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
