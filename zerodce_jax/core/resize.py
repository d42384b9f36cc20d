"""Bilinear resampling that matches PyTorch's, as two-tap gathers per axis.

``jax.image.resize`` antialiases when down-scaling and always uses half-pixel
centres, so it is not the function the official Zero-DCE++ uses. This module
reproduces ``F.interpolate(x, scale_factor=1/s, mode='bilinear')``
(``align_corners=False``, no antialiasing) and ``nn.UpsamplingBilinear2d``
(``align_corners=True``) exactly. Each output sample is
``w0 * x[i0] + w1 * x[i1]``; the taps are computed with NumPy in float64
(constants of a compiled program), and the same code runs on NumPy and JAX
arrays, so huge images can be resampled on the host in strips.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["torch_downscaled_size", "torch_downscale", "interp_taps",
           "traced_taps", "interp_matrix",
           "resize_axis", "resize_bilinear"]


def torch_downscaled_size(size: Any, scale_factor: float) -> Any:
  """Output length of ``F.interpolate(..., scale_factor=1/s)``: ``floor(n * (1/s))``.

  ``size`` may be a symbolic dimension (``jax.export``): for an integer
  factor the result is then ``size // s``, which equals the float formula
  (checked for every size below 200,000 in the tests).
  """
  if isinstance(size, (int, np.integer)):
    return int(math.floor(size * (1.0 / scale_factor)))
  if scale_factor != int(scale_factor):
    raise ValueError("a symbolic size needs an integer scale factor")
  return size // int(scale_factor)


def interp_taps(in_size: int, out_size: int, *, align_corners: bool,
                scale: float | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Two-tap linear interpolation: ``out[d] = w0[d] x[i0[d]] + w1[d] x[i1[d]]``.

  Args:
    in_size: input length.
    out_size: output length.
    align_corners: PyTorch's flag. ``True``: ``src = dst * (in-1)/(out-1)``.
      ``False``: ``src = (dst + 0.5) * scale - 0.5``, clamped at 0.
    scale: input/output ratio used when ``align_corners=False``; PyTorch uses
      ``1 / scale_factor`` when a scale factor was given, else
      ``in_size / out_size`` (the default here).

  Returns:
    ``(i0, i1, w0, w1)``: int32 indices and float32 weights, ``[out_size]``.
  """
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
  return (i0.astype(np.int32), i1.astype(np.int32),
          (1.0 - lam).astype(np.float32), lam.astype(np.float32))


def traced_taps(in_size: Any, out_size: Any, *, align_corners: bool,
                scale: float | None = None) -> tuple[Any, Any, Any, Any]:
  """``interp_taps`` computed inside a JAX program, for sizes known only when
  it runs (symbolic dimensions of ``jax.export``).

  Integer arithmetic where ``interp_taps`` uses float64: for
  ``align_corners`` the source index is ``dst * (in - 1) // (out - 1)`` and
  the weight the exact remainder divided in float32; for an integer
  ``scale`` the float32 source coordinate is exact. Same taps as
  ``interp_taps`` up to float32 rounding of the weights.
  """
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  dst = jax.lax.broadcasted_iota(jnp.int32, (out_size,), 0)
  if align_corners:
    num = dst * (in_size - 1)
    den = jnp.maximum(jnp.int32(1), out_size - 1)
    i0 = num // den
    lam = (num - i0 * den).astype(jnp.float32) / den.astype(jnp.float32)
  else:
    ratio = (jnp.float32(scale) if scale is not None else
             jnp.float32(in_size) / jnp.float32(out_size))
    src = jnp.maximum((dst.astype(jnp.float32) + 0.5) * ratio - 0.5, 0.0)
    i0 = jnp.floor(src).astype(jnp.int32)
    lam = src - i0.astype(jnp.float32)
  i0 = jnp.minimum(i0, in_size - 1)
  i1 = jnp.minimum(i0 + 1, in_size - 1)
  return i0, i1, 1.0 - lam, lam


def interp_matrix(in_size: int, out_size: int, *, align_corners: bool,
                  scale: float | None = None) -> np.ndarray:
  """The taps of ``interp_taps`` as a dense ``[out_size, in_size]`` matrix."""
  i0, i1, w0, w1 = interp_taps(in_size, out_size, align_corners=align_corners,
                               scale=scale)
  w = np.zeros((out_size, in_size), np.float64)
  np.add.at(w, (np.arange(out_size), i0), w0)
  np.add.at(w, (np.arange(out_size), i1), w1)
  return w


def resize_axis(x: Any, taps: tuple[Any, Any, Any, Any], axis: int) -> Any:
  """Applies ``interp_taps`` along ``axis`` of a NumPy or JAX array."""
  i0, i1, w0, w1 = taps
  shape = [1] * x.ndim
  shape[axis] = -1
  w0 = w0.reshape(shape).astype(x.dtype)
  w1 = w1.reshape(shape).astype(x.dtype)
  return x.take(i0, axis=axis) * w0 + x.take(i1, axis=axis) * w1


def resize_bilinear(x: Any, height: int, width: int, *, align_corners: bool,
                    scale: tuple[float, float] | None = None) -> Any:
  """Bilinear resize of an NHWC batch, PyTorch semantics, no antialiasing.

  Args:
    x: ``[B, H, W, C]`` float array (NumPy or JAX).
    height, width: output size.
    align_corners: see ``interp_taps``.
    scale: optional (row, column) input/output ratios for
      ``align_corners=False`` (PyTorch's ``1/scale_factor``).

  Returns:
    ``[B, height, width, C]`` array of ``x``'s dtype and kind.
  """
  _, h, w, _ = x.shape
  sh, sw = (None, None) if scale is None else scale
  static = all(isinstance(n, (int, np.integer))
               for n in (h, w, height, width))
  taps = interp_taps if static else traced_taps
  x = resize_axis(x, taps(h, height, align_corners=align_corners, scale=sh),
                  axis=1)
  return resize_axis(x, taps(w, width, align_corners=align_corners,
                             scale=sw), axis=2)


def torch_downscale(x: Any, scale_factor: int) -> Any:
  """``F.interpolate(x, scale_factor=1/s, mode='bilinear')`` of an NHWC
  batch (NumPy or JAX; sizes may be symbolic): Zero-DCE++'s down-scaling.

  Raises:
    ValueError: a (static) image smaller than the factor.
  """
  _, h, w, _ = x.shape
  hd = torch_downscaled_size(h, scale_factor)
  wd = torch_downscaled_size(w, scale_factor)
  if isinstance(hd, int) and isinstance(wd, int) and min(hd, wd) < 1:
    raise ValueError(f"image {h}x{w} is smaller than scale factor "
                     f"{scale_factor}")
  return resize_bilinear(x, hd, wd, align_corners=False,
                         scale=(1.0 / (1.0 / scale_factor),) * 2)
