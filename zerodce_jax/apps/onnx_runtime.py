"""Enhancing with an exported ONNX file through onnxruntime.

``OnnxEnhancer`` has the interface of ``enhance.Enhancer`` (called with a
list of ``[H, W, 3]`` float32 images, returns the enhanced list; a
``batch_size``), so ``zerodce enhance --runtime onnx`` reuses the whole file
handling of the JAX path: folders, 16-bit, alpha, EXIF, per-file errors.

Large images (more than ``max_pixels``) are run in tiles with a halo of
``depth`` pixels, each tile cut from the image itself (no padding): a conv's
zero padding then falls only on the image's own border, as for the whole
image, so tiles are exact. Files with an in-graph scale factor (Zero-DCE++)
run whole: their network works at 1/s of the size.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Sequence

import numpy as np

from zerodce_jax.apps import tiling
from zerodce_jax.formats import export

__all__ = ["OnnxEnhancer", "OnnxModelError"]


class OnnxModelError(ValueError):
  """The file is not a readable ONNX model exported by zerodce-jax."""


@dataclasses.dataclass
class OnnxEnhancer:
  """Enhances images with an ONNX file from ``zerodce export``.

  Attributes:
    path: the ``.onnx`` file.
    max_pixels: larger images are processed in tiles (scale factor 1 only).
    tile: tile core size in pixels.
    threads: onnxruntime intra-op threads (0: its default, all cores).
    batch_size: images read per batch by ``enhance_files`` (each image is
      one call here).
  """
  path: str
  max_pixels: int = 4_194_304
  tile: int = 1024
  threads: int = 0
  batch_size: int = 8

  def __post_init__(self):
    try:
      import onnxruntime as ort  # noqa: PLC0415
    except ImportError:
      raise OnnxModelError("--runtime onnx needs onnxruntime: pip install "
                           "'zerodce-jax[export]'") from None
    if not os.path.isfile(self.path):
      raise OnnxModelError(f"{self.path}: no such file")
    options = ort.SessionOptions()
    options.intra_op_num_threads = self.threads
    options.log_severity_level = 3
    try:
      self._session = ort.InferenceSession(
          self.path, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own kinds
      raise OnnxModelError(f"{self.path}: not a readable ONNX model "
                           f"({' '.join(str(e).split())[:200]})") from None
    meta = self._session.get_modelmeta().custom_metadata_map
    if meta.get("format") != export.ONNX_FORMAT_TAG:
      raise OnnxModelError(f"{self.path}: not an ONNX file made by "
                           "`zerodce export` (no zerodce-jax metadata)")
    try:
      self.arch = json.loads(meta["arch"])
      self.scale_factor = int(meta["scale_factor"])
      self.strength = float(meta.get("strength", "1.0"))
      self.depth = int(self.arch["depth"])
    except (KeyError, ValueError, TypeError):
      raise OnnxModelError(f"{self.path}: damaged zerodce-jax metadata"
                           ) from None
    inp = self._session.get_inputs()
    if len(inp) != 1 or inp[0].name != "image" or len(inp[0].shape) != 4:
      raise OnnxModelError(f"{self.path}: unexpected inputs (want one "
                           "'image' [N, H, W, 3])")
    self._fixed = [d if isinstance(d, int) else None for d in inp[0].shape]
    self.source = meta.get("source_weights", "")

  def describe(self) -> str:
    """One line: what the file holds."""
    kind = "zerodce++" if self.arch.get("separable") else "zerodce"
    sf = f" s={self.scale_factor}" if self.scale_factor != 1 else ""
    sf += f" strength {self.strength:g}" if self.strength != 1 else ""
    return f"{self.path} (ONNX, {kind}{sf}, onnxruntime CPU)"

  def _run(self, x: np.ndarray) -> np.ndarray:
    """``[h, w, 3]`` -> enhanced ``[h, w, 3]`` in one session call."""
    batch, fh, fw, _ = self._fixed
    h, w = x.shape[:2]
    if (fh and fh != h) or (fw and fw != w):
      raise ValueError(f"this ONNX file takes {fh or 'any'}x{fw or 'any'} "
                       f"(HxW) images, not {h}x{w}; export it without "
                       "--height/--width for any size")
    n = batch or 1
    xb = np.zeros((n, h, w, 3), np.float32)
    xb[0] = x
    return self._session.run(["enhanced"], {"image": xb})[0][0]

  def _tiled(self, image: np.ndarray) -> np.ndarray:
    out = np.empty_like(image)
    for t in tiling.halo_tiles(*image.shape[:2], tile=self.tile,
                               radius=self.depth):
      res = self._run(image[t.y0:t.y1, t.x0:t.x1])
      out[t.y:t.y + t.h, t.x:t.x + t.w] = t.core_of(res)
    return out

  def __call__(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Enhances RGB float images (``[H, W, 3]`` in [0, 1], any sizes)."""
    outs = []
    for im in tiling.checked_images(images):
      h, w = im.shape[:2]
      if min(h, w) < self.scale_factor:
        raise ValueError(f"image {h}x{w} is smaller than the file's scale "
                         f"factor {self.scale_factor}")
      fixed = self._fixed[1] or self._fixed[2]
      if (h * w > self.max_pixels and self.scale_factor == 1
          and not fixed):
        outs.append(self._tiled(im))
      else:
        outs.append(self._run(im))
    return outs

