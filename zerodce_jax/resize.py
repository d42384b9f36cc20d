"""Bilinear resampling that matches PyTorch's, written as two small matrices.

``jax.image.resize`` antialiases when down-scaling and always uses half-pixel
centres, so it is not the function the official Zero-DCE++ uses. This module
reproduces ``F.interpolate(x, scale_factor=1/s, mode='bilinear')``
(``align_corners=False``, no antialiasing) and ``nn.UpsamplingBilinear2d``
(``align_corners=True``) exactly, as separable interpolation matrices applied
with ``einsum`` (images NHWC; the matrices are built with NumPy in float64 at
trace time, so they are constants of the compiled program).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["torch_downscaled_size", "interp_matrix", "resize_bilinear"]


def torch_downscaled_size(size: int, scale_factor: float) -> int:
  """Output length of ``F.interpolate(..., scale_factor=1/s)``: ``floor(n * (1/s))``."""
  return int(math.floor(size * (1.0 / scale_factor)))


def interp_matrix(in_size: int, out_size: int, *, align_corners: bool,
                  scale: float | None = None) -> np.ndarray:
  """Linear-interpolation weights, ``[out_size, in_size]`` float64.

  Args:
    in_size: input length.
    out_size: output length.
    align_corners: PyTorch's flag. ``True``: ``src = dst * (in-1)/(out-1)``.
      ``False``: ``src = (dst + 0.5) * scale - 0.5``, clamped at 0.
    scale: input/output ratio used when ``align_corners=False``; PyTorch uses
      ``1 / scale_factor`` when a scale factor was given, else
      ``in_size / out_size`` (the default here).
  """
  w = np.zeros((out_size, in_size), np.float64)
  dst = np.arange(out_size, dtype=np.float64)
  if align_corners:
    ratio = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    src = dst * ratio
  else:
    ratio = in_size / out_size if scale is None else scale
    src = np.maximum((dst + 0.5) * ratio - 0.5, 0.0)
  i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
  i1 = np.minimum(i0 + 1, in_size - 1)
  lam = src - i0
  np.add.at(w, (np.arange(out_size), i0), 1.0 - lam)
  np.add.at(w, (np.arange(out_size), i1), lam)
  return w


def resize_bilinear(x: jax.Array, height: int, width: int, *,
                    align_corners: bool,
                    scale: tuple[float, float] | None = None) -> jax.Array:
  """Bilinear resize of an NHWC batch, PyTorch semantics, no antialiasing.

  Args:
    x: ``[B, H, W, C]`` float array.
    height, width: output size.
    align_corners: see ``interp_matrix``.
    scale: optional (row, column) input/output ratios for
      ``align_corners=False`` (PyTorch's ``1/scale_factor``).

  Returns:
    ``[B, height, width, C]`` array of ``x``'s dtype.
  """
  _, h, w, _ = x.shape
  sh, sw = (None, None) if scale is None else scale
  wh = jnp.asarray(interp_matrix(h, height, align_corners=align_corners,
                                 scale=sh), x.dtype)
  ww = jnp.asarray(interp_matrix(w, width, align_corners=align_corners,
                                 scale=sw), x.dtype)
  y = jnp.einsum("oh,bhwc->bowc", wh, x,
                 precision=jax.lax.Precision.HIGHEST)
  return jnp.einsum("pw,bowc->bopc", ww, y,
                    precision=jax.lax.Precision.HIGHEST)
