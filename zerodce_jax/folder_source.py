"""A folder of images as a training source: deterministic, resumable batches.

Batch ``s`` is a pure function of ``(seed, s)``: epoch ``e`` visits the images
in ``permutation(fold_in(seed, e))`` order, so a resumed run needs only the
step to see exactly the batches it would have seen.
"""

from __future__ import annotations

import os
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

__all__ = ["list_images", "list_images_or_empty", "load_resized", "batch_indices", "IMAGE_EXTENSIONS"]

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
  if not os.path.isdir(root):
    raise FileNotFoundError(f"{root}: not a folder of images")
  out = list_images_or_empty(root)
  if not out:
    raise FileNotFoundError(f"{root}: no images ({', '.join(IMAGE_EXTENSIONS)})")
  return out


def load_resized(paths: Sequence[str], size: int) -> np.ndarray:
  """Loads images as RGB, resized to ``size x size`` with Lanczos (PIL's
  antialiasing filter, as the official loader), ``[N, size, size, 3]`` float32
  in [0, 1]."""
  out = np.empty((len(paths), size, size, 3), np.float32)
  for i, p in enumerate(paths):
    with Image.open(p) as im:
      im = im.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
      out[i] = np.asarray(im, np.float32) / 255.0
  return out


def batch_indices(n: int, *, batch_size: int, seed: int,
                  start_step: int = 0) -> Iterator[np.ndarray]:
  """Endless deterministic stream of index batches, starting at a step.

  Each epoch is a fresh permutation (seeded by ``(seed, epoch)``); the last
  incomplete batch of an epoch is dropped, as the official loader's
  ``drop_last`` is not set but every epoch here is whole batches.
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
