"""Training input: image sources, deterministic resumable batches, prefetch.

Batch ``s`` is a pure function of ``(seed, s)``: epoch ``e`` visits this
process's images in the order ``permutation(seed, e)``, and random flips are
drawn from ``(seed, s)``. A resumed run therefore needs only the step (saved in
every checkpoint) to see exactly the batches it would have seen.

Multi-host: every process holds the whole (decoded, resized) training set
and makes its slice of each global batch, ``batch_size / process_count``
images reshaped to ``[local_devices, per_device, H, W, 3]``; the global
batches are the same for any number of processes and devices.

Two pipelines: ``batches`` makes float32 batches on the host (NumPy, a
prefetch thread); ``device_batch`` runs inside the jitted train step on a
copy of the uint8 set resident on the device, so the host only sends
indices (for accelerators, where a host would be the bound).
"""

from __future__ import annotations

import os
import queue
import threading
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
from PIL import Image

from zerodce_jax.formats import atomic, image_io

if TYPE_CHECKING:
  import jax

__all__ = ["load_resized", "resize_uint8", "pack_resized", "exposure_mix", "synthetic_images",
           "batch_indices", "batches", "prefetch", "device_batch",
           "index_batches", "steps_per_epoch", "LAST_BATCH_CHOICES"]

def resize_uint8(rgb: np.ndarray, size: int) -> np.ndarray:
  """Float RGB in [0, 1] -> ``size x size`` uint8 RGB, Lanczos (PIL's
  antialiasing filter, as the official loader's ``ANTIALIAS``)."""
  im = Image.fromarray(image_io.from_float(rgb, 8))
  return np.asarray(im.resize((size, size), Image.Resampling.LANCZOS))


def _readable(paths: Sequence[str], report) -> Iterator[tuple]:
  """``(path, rgb, info)`` of each file ``image_io`` reads; the others are
  reported (``skipping ...``) and left out."""
  for p in paths:
    try:
      rgb, info = image_io.read_image(p)
    except image_io.ImageError as e:
      if report is not None:
        report(f"skipping {e}")
      continue
    yield p, rgb, info


def load_resized(paths: Sequence[str], size: int, *,
                 report=None) -> tuple[np.ndarray, list[str]]:
  """Loads image files resized to ``size x size``.

  Any file ``image_io.read_image`` reads works (8/16-bit, grey, RGBA, EXIF
  orientation); grey and RGBA files are converted to RGB and reported, and
  unreadable ones are reported and skipped, through ``report(message)``.

  Returns:
    ``(images, kept)``: ``[N, size, size, 3]`` uint8 and the paths loaded.
  """
  out, kept = [], []
  for p, rgb, info in _readable(paths, report):
    if report is not None and (info.gray or info.alpha is not None):
      report(f"{p}: {'grey' if info.gray else 'RGBA'} image used as RGB")
    out.append(resize_uint8(rgb, size))
    kept.append(p)
  if not out:
    raise FileNotFoundError("no readable training images")
  return np.stack(out), kept


def pack_resized(src: str, out: str, *, size: int = 256, quality: int = 90,
                 report=None) -> tuple[int, int]:
  """Writes a compact copy of a training folder: every image resized once
  to ``size x size`` (``resize_uint8``, the official Lanczos step) and
  stored as a JPEG (``quality``, 4:4:4 chroma) under the same relative path
  and stem, for machines that cannot carry the originals. Training on the
  copy (``--config.data.path=OUT``) skips the resize (already at ``size``)
  and differs from the originals by the JPEG error alone.

  Returns:
    ``(images written, bytes written)``.
  """
  written = total = 0
  for p, rgb, _ in _readable(image_io.list_images(src), report):
    rel = os.path.splitext(os.path.relpath(p, src))[0] + ".jpg"
    dst = os.path.join(out, rel)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with atomic.atomic_path(dst) as tmp:
      Image.fromarray(resize_uint8(rgb, size)).save(
          tmp, "JPEG", quality=quality, subsampling=0)
    written += 1
    total += os.path.getsize(dst)
  if not written:
    raise FileNotFoundError(f"{src}: no readable images")
  return written, total


EXPOSURE_STOPS = (-3.0, 1.5)
READ_NOISE, SHOT_NOISE = 0.002, 0.01


def _expose(x, gain, noise, *, read_noise: float, shot_noise: float, xp=np):
  """The exposure change both pipelines apply (NumPy or ``jax.numpy`` as
  ``xp``): linearise ``x`` (gamma 2.2), scale by ``gain``, add ``noise``
  (standard normal) scaled to shot + read noise, clip, re-encode."""
  lin = xp.power(xp.clip(x, 0, 1), 2.2) * gain
  lin = lin + noise * xp.sqrt(shot_noise**2 * lin + read_noise**2)
  return xp.power(xp.clip(lin, 0, 1), 1 / 2.2)


def exposure_mix(images: np.ndarray, *, key: Sequence[int],
                 stops: tuple[float, float] = EXPOSURE_STOPS,
                 read_noise: float = READ_NOISE,
                 shot_noise: float = SHOT_NOISE) -> np.ndarray:
  """Synthetic under/over-exposure of float images in [0, 1], ``[N, H, W, 3]``.

  Each image is linearised (gamma 2.2), scaled by ``2 ** U(stops)``, given
  sensor-like noise (shot noise with variance ``shot_noise**2 * signal``,
  read noise ``read_noise``), clipped and re-encoded (gamma 1/2.2). For users
  whose photos are all well exposed: the paper's point is that training data
  must span exposures. Deterministic in ``key`` (e.g. ``(seed, step)``).
  """
  rng = np.random.default_rng(list(key))
  images = np.asarray(images, np.float32)
  gain = np.power(2.0, rng.uniform(*stops, size=(len(images), 1, 1, 1)))
  noise = rng.standard_normal(images.shape, dtype=np.float32)
  return _expose(images, gain.astype(np.float32), noise,
                 read_noise=read_noise, shot_noise=shot_noise)


def synthetic_images(n: int, size: int, *, seed: int) -> np.ndarray:
  """``n`` smooth random RGB scenes at random exposures, uint8.

  Each is a low-frequency colour field (bilinear up-sampling of a 4x4 grid)
  plus texture, scaled by an exposure gain drawn from 2^[-3, 1], so a batch
  spans under- and over-exposure as the paper's training data should.
  """
  rng = np.random.default_rng(seed)
  grid = rng.random((n, 4, 4, 3))
  coarse = np.stack([np.asarray(Image.fromarray(
      (g * 255).astype(np.uint8)).resize((size, size),
                                         Image.Resampling.BILINEAR))
                     for g in grid]).astype(np.float64) / 255
  texture = rng.random((n, size, size, 1)) * 0.2
  gain = 2.0 ** rng.uniform(-3, 1, size=(n, 1, 1, 1))
  return (np.clip((coarse * 0.8 + texture) * gain, 0, 1) * 255).astype(
      np.uint8)


LAST_BATCH_CHOICES = ("drop", "keep")


def steps_per_epoch(n: int, *, batch_size: int, last_batch: str = "drop"
                    ) -> int:
  """Batches in one epoch of ``n`` images: ``n // batch_size`` whole ones
  (``"drop"``), or one more for the remainder when ``"keep"`` (PyTorch's
  ``DataLoader(drop_last=False)``, the official loader: 2,002 images at
  batch 8 make 251 steps, the last of 2 images)."""
  if last_batch not in LAST_BATCH_CHOICES:
    raise ValueError(f"last_batch must be one of {LAST_BATCH_CHOICES}, got "
                     f"{last_batch!r}")
  if batch_size <= 0:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  if last_batch == "keep":
    return -(-n // batch_size)
  return n // batch_size


def batch_indices(n: int, *, batch_size: int, seed: int,
                  start_step: int = 0, last_batch: str = "drop"
                  ) -> Iterator[np.ndarray]:
  """Endless deterministic stream of index batches, starting at a step.

  Each epoch is a fresh permutation seeded by ``(seed, epoch)``. With
  ``last_batch="drop"`` an epoch is ``n // batch_size`` whole batches (the
  remainder waits for a later epoch's permutation); with ``"keep"`` the
  epoch ends with one shorter batch of the ``n % batch_size`` remaining
  images, so every image is seen exactly once per epoch (the official
  loader's ``drop_last=False``). Either way batch ``s`` is a pure function
  of ``(seed, s)``.
  """
  per_epoch = steps_per_epoch(n, batch_size=batch_size, last_batch=last_batch)
  if per_epoch == 0:
    raise ValueError(f"{n} images cannot fill a batch of {batch_size}")
  step = start_step
  perm_epoch, perm = None, None
  while True:
    epoch, i = divmod(step, per_epoch)
    if epoch != perm_epoch:
      perm_epoch, perm = epoch, np.random.default_rng([seed, epoch]
                                                      ).permutation(n)
    yield perm[i * batch_size:(i + 1) * batch_size]
    step += 1


def _check_split(n: int, *, batch_size: int, last_batch: str, parts: int,
                 what: str) -> None:
  """Raises when the global batch, or the kept last batch, does not split
  into ``parts`` equal slices."""
  if batch_size % parts:
    raise ValueError(f"batch {batch_size} does not split over {what}")
  rest = n % batch_size
  if last_batch == "keep" and rest and rest % parts:
    raise ValueError(
        f"{n} images at batch {batch_size} leave a last batch of {rest}, "
        f"which does not split over {what}; use last_batch='drop' (the "
        "remainder then waits for a later epoch)")


def batches(images: np.ndarray, *, batch_size: int, seed: int,
            start_step: int = 0, num_devices: int = 1,
            process_index: int = 0, process_count: int = 1,
            random_flip: bool = False, crop_size: int = 0,
            exposure_mixing: bool = False,
            last_batch: str = "drop") -> Iterator[np.ndarray]:
  """This process's float32 share of each global batch, ``[num_devices,
  batch_size // (process_count * num_devices), H, W, 3]``.

  Args:
    images: the training set, uint8 ``[N, H, W, 3]`` (every process holds
      all of it).
    batch_size: the global batch (all processes together).
    seed, start_step: see ``batch_indices``.
    num_devices: this process's devices (leading axis).
    process_index, process_count: this process takes slice
      ``process_index`` of ``process_count`` equal slices of the global
      batch, so the global batches (and the trained params) are the same
      whatever the number of processes.
    random_flip: horizontal flips drawn from ``(seed, step)``.
    crop_size: > 0: a random ``crop_size`` square of each image, drawn from
      ``(seed, step)``.
    exposure_mixing: apply ``exposure_mix`` (keyed by ``(seed, step)``, and
      the process index when there are several).
    last_batch: ``"drop"`` or ``"keep"`` (see ``batch_indices``). A kept
      last batch is smaller (``len(images) % batch_size`` images, split the
      same way, so it must divide by ``process_count * num_devices``): a
      jitted step compiles once more for its shape.
  """
  parts = process_count * num_devices
  _check_split(len(images), batch_size=batch_size, last_batch=last_batch,
               parts=parts, what=f"{process_count} process(es) x "
               f"{num_devices} devices")
  step = start_step
  for idx in batch_indices(len(images), batch_size=batch_size, seed=seed,
                           start_step=start_step, last_batch=last_batch):
    local = len(idx) // process_count
    mine = slice(process_index * local, (process_index + 1) * local)
    b = images[idx[mine]].astype(np.float32) / 255.0
    if crop_size:
      h, w = b.shape[1:3]
      if crop_size > min(h, w):
        raise ValueError(f"crop {crop_size} larger than images {h}x{w}")
      r = np.random.default_rng([seed, step, 2])
      ys = r.integers(0, h - crop_size + 1, batch_size)[:len(idx)][mine]
      xs = r.integers(0, w - crop_size + 1, batch_size)[:len(idx)][mine]
      b = np.stack([im[y:y + crop_size, x:x + crop_size]
                    for im, y, x in zip(b, ys, xs)])
    if random_flip:
      flip = (np.random.default_rng([seed, step, 1]).random(batch_size)
              < 0.5)[:len(idx)][mine]
      b[flip] = b[flip, :, ::-1]
    if exposure_mixing:
      key = (seed, step, 3) + ((process_index,) if process_count > 1 else ())
      b = exposure_mix(b, key=key)
    yield b.reshape((num_devices, -1) + b.shape[1:])
    step += 1


def prefetch(iterator: Iterator, depth: int = 2) -> Iterator:
  """Runs ``iterator`` in a background thread, ``depth`` items ahead."""
  if depth <= 0:
    yield from iterator
    return
  q: queue.Queue = queue.Queue(maxsize=depth)
  done = object()
  stop = threading.Event()

  def work():
    try:
      for item in iterator:
        while not stop.is_set():
          try:
            q.put(item, timeout=0.1)
            break
          except queue.Full:
            continue
        if stop.is_set():
          return
    except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
      q.put(e)
      return
    q.put(done)

  t = threading.Thread(target=work, daemon=True)
  t.start()
  try:
    while True:
      item = q.get()
      if item is done:
        return
      if isinstance(item, BaseException):
        raise item
      yield item
  finally:
    stop.set()


# --------------------------------------------------------------------------
# On the accelerator: the decoded set stays on the device as uint8 and each
# step gathers and augments its batch inside the jitted step.
# --------------------------------------------------------------------------
def device_batch(images: "jax.Array", idx: "jax.Array", *, seed: int,
                 step: "jax.Array", first_position: "jax.Array | int" = 0,
                 crop_size: int = 0, random_flip: bool = False,
                 exposure_mixing: bool = False,
                 stops: tuple[float, float] = EXPOSURE_STOPS,
                 read_noise: float = READ_NOISE,
                 shot_noise: float = SHOT_NOISE) -> "jax.Array":
  """A training batch made on the device (traceable; runs inside the step).

  Args:
    images: uint8 ``[N, H, W, 3]``, this process's decoded training set,
      resident on the device.
    idx: int ``[b]`` indices into ``images`` (from ``batch_indices``).
    seed: the run's seed.
    step: the global step (``state.step``; traced is fine).
    first_position: position of ``idx[0]`` in the global batch; sample ``j``
      draws its crop, flip and exposure from ``(seed, step, first_position +
      j)``, so the batch does not depend on how it is split over devices and
      a resumed run redraws exactly what it would have drawn.
    crop_size, random_flip, exposure_mixing: as ``batches`` (the same
      augmentations and ranges; drawn with ``jax.random``, so not the same
      draws as the host pipeline's NumPy generator).

  Returns:
    float32 ``[b, S, S, 3]`` in [0, 1] (``S = crop_size or H``).
  """
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  h, w = images.shape[1:3]
  if crop_size > min(h, w):
    raise ValueError(f"crop {crop_size} larger than images {h}x{w}")
  base = jax.random.fold_in(jax.random.key(seed), step)
  positions = first_position + jnp.arange(idx.shape[0])

  def one(i, pos):
    k_crop, k_flip, k_gain, k_noise = jax.random.split(
        jax.random.fold_in(base, pos), 4)
    x = images[i]
    if crop_size:
      y0 = jax.random.randint(k_crop, (), 0, h - crop_size + 1)
      x0 = jax.random.randint(jax.random.fold_in(k_crop, 1), (), 0,
                              w - crop_size + 1)
      x = jax.lax.dynamic_slice(x, (y0, x0, 0), (crop_size, crop_size, 3))
    x = x.astype(jnp.float32) / 255.0
    if random_flip:
      x = jnp.where(jax.random.bernoulli(k_flip), x[:, ::-1], x)
    if exposure_mixing:
      gain = jnp.exp2(jax.random.uniform(k_gain, (), minval=stops[0],
                                         maxval=stops[1]))
      x = _expose(x, gain, jax.random.normal(k_noise, x.shape),
                  read_noise=read_noise, shot_noise=shot_noise, xp=jnp)
    return x

  return jax.vmap(one)(idx, positions)


def index_batches(n: int, *, batch_size: int, seed: int, start_step: int = 0,
                  num_devices: int = 1, process_index: int = 0,
                  process_count: int = 1, last_batch: str = "drop"
                  ) -> Iterator[np.ndarray]:
  """This process's slice of each global batch's indices, int32
  ``[num_devices, batch_size // (process_count * num_devices)]`` (the host's
  whole share of the device-side pipeline; slices and ``last_batch`` as
  ``batches``: a kept last batch has fewer indices per device)."""
  parts = process_count * num_devices
  _check_split(n, batch_size=batch_size, last_batch=last_batch, parts=parts,
               what=f"{process_count} process(es) x {num_devices} devices")
  for idx in batch_indices(n, batch_size=batch_size, seed=seed,
                           start_step=start_step, last_batch=last_batch):
    local = len(idx) // process_count
    mine = idx[process_index * local:(process_index + 1) * local]
    yield mine.astype(np.int32).reshape(num_devices, -1)
