"""Training input: image sources, deterministic resumable batches, prefetch.

Batch ``s`` is a pure function of ``(seed, s)``: epoch ``e`` visits this
process's images in the order ``permutation(seed, e)``, and random flips are
drawn from ``(seed, s)``. A resumed run therefore needs only the step (saved in
every checkpoint) to see exactly the batches it would have seen.

Multi-host: each process keeps the images ``i`` with
``i % process_count == process_index`` and makes ``batch_size /
process_count`` images per step, reshaped to ``[local_devices, per_device,
H, W, 3]`` for ``pmap``.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

__all__ = ["IMAGE_EXTENSIONS", "list_images", "list_images_or_empty",
           "load_resized", "synthetic_images", "shard_for_process",
           "batch_indices", "batches", "prefetch"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def list_images_or_empty(root: str) -> list[str]:
  """Image files under ``root`` (recursive, by extension), sorted."""
  out = []
  for d, _, files in os.walk(root):
    out += [os.path.join(d, f) for f in files
            if f.lower().endswith(IMAGE_EXTENSIONS)]
  return sorted(out)


def list_images(root: str) -> list[str]:
  """Image files under ``root`` (recursive), sorted; raises if none."""
  if not root or not os.path.isdir(root):
    raise FileNotFoundError(f"{root!r}: not a folder of images (set "
                            "--config.data.path)")
  out = list_images_or_empty(root)
  if not out:
    raise FileNotFoundError(f"{root}: no images ({', '.join(IMAGE_EXTENSIONS)})")
  return out


def load_resized(paths: Sequence[str], size: int, *,
                 report=None) -> tuple[np.ndarray, list[str]]:
  """Loads images as RGB resized to ``size x size`` with Lanczos (PIL's
  antialiasing filter, as the official loader).

  Returns:
    ``(images, kept)``: ``[N, size, size, 3]`` uint8 and the paths loaded.
    Unreadable files are reported once through ``report(message)`` and
    skipped.
  """
  out, kept = [], []
  for p in paths:
    try:
      with Image.open(p) as im:
        im = im.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
        out.append(np.asarray(im, np.uint8))
        kept.append(p)
    except (OSError, ValueError, SyntaxError) as e:
      if report is not None:
        report(f"skipping {p}: {e}")
  if not out:
    raise FileNotFoundError("no readable training images")
  return np.stack(out), kept


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


def shard_for_process(items: Sequence, index: int, count: int) -> list:
  """This process's share: items ``i`` with ``i % count == index``."""
  return list(items[index::count])


def batch_indices(n: int, *, batch_size: int, seed: int,
                  start_step: int = 0) -> Iterator[np.ndarray]:
  """Endless deterministic stream of index batches, starting at a step.

  Each epoch is a fresh permutation seeded by ``(seed, epoch)``; an epoch is
  ``n // batch_size`` whole batches (the remainder waits for a later epoch's
  permutation).
  """
  per_epoch = n // batch_size
  if per_epoch == 0:
    raise ValueError(f"{n} images cannot fill a batch of {batch_size}")
  step = start_step
  while True:
    epoch, i = divmod(step, per_epoch)
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    yield perm[i * batch_size:(i + 1) * batch_size]
    step += 1


def batches(images: np.ndarray, *, batch_size: int, seed: int,
            start_step: int = 0, num_devices: int = 1,
            random_flip: bool = False) -> Iterator[np.ndarray]:
  """Float32 batches ``[num_devices, batch_size // num_devices, H, W, 3]``.

  Args:
    images: this process's uint8 images ``[N, H, W, 3]``.
    batch_size: images per step on this process.
    seed, start_step: see ``batch_indices``.
    num_devices: local devices (leading axis for pmap).
    random_flip: horizontal flips drawn from ``(seed, step)``.
  """
  if batch_size % num_devices:
    raise ValueError(f"batch {batch_size} does not split over {num_devices} "
                     "devices")
  step = start_step
  for idx in batch_indices(len(images), batch_size=batch_size, seed=seed,
                           start_step=start_step):
    b = images[idx].astype(np.float32) / 255.0
    if random_flip:
      flip = np.random.default_rng([seed, step, 1]).random(len(idx)) < 0.5
      b[flip] = b[flip, :, ::-1]
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
