"""What every enhancer shares: input checks and exact halo tiling.

A fully convolutional network of ``depth`` 3x3 layers needs ``depth`` pixels
of context on each side of an output pixel (its receptive-field radius).
Cutting a large image into ``tile x tile`` cores, each read with that halo
(clamped at the image border, where the network's own zero padding applies),
and keeping only the cores gives exactly the whole-image result.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Sequence

import numpy as np

__all__ = ["checked_images", "Tile", "halo_tiles"]


def checked_images(images: Sequence[np.ndarray]) -> list[np.ndarray]:
  """RGB float images ``[H, W, 3]`` as float32 clipped to [0, 1] (an image
  that already is one is returned as it is, not copied: a 24 MP photo
  checked again costs no memory).

  Raises:
    ValueError: a wrong shape, or NaN/infinite values.
  """
  out = []
  for im in images:
    if im.ndim != 3 or im.shape[-1] != 3:
      raise ValueError(f"expected [H, W, 3] images, got {im.shape}")
    if not np.all(np.isfinite(im)):
      raise ValueError("image holds NaN or infinite values")
    if not (im.dtype == np.float32 and im.min() >= 0 and im.max() <= 1):
      im = np.clip(np.asarray(im, np.float32), 0, 1)
    out.append(im)
  return out


@dataclasses.dataclass(frozen=True)
class Tile:
  """One tile: the core ``[y, y + h) x [x, x + w)`` that it fills in the
  output, and the window ``[y0, y1) x [x0, x1)`` of the image it reads
  (the core plus the halo, clamped to the image)."""
  y: int
  x: int
  h: int
  w: int
  y0: int
  y1: int
  x0: int
  x1: int

  def core_of(self, result: np.ndarray) -> np.ndarray:
    """The core out of a result computed on the window."""
    dy, dx = self.y - self.y0, self.x - self.x0
    return result[dy:dy + self.h, dx:dx + self.w]


def halo_tiles(height: int, width: int, *, tile: int,
               radius: int) -> Iterator[Tile]:
  """The tiles covering a ``height x width`` image, row by row."""
  for y in range(0, height, tile):
    for x in range(0, width, tile):
      yield Tile(y=y, x=x, h=min(tile, height - y), w=min(tile, width - x),
                 y0=max(y - radius, 0), y1=min(y + tile + radius, height),
                 x0=max(x - radius, 0), x1=min(x + tile + radius, width))
