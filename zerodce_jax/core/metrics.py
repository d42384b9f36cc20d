"""Evaluation figures of the papers (not training losses).

Images are float ``[H, W, 3]`` (or batches ``[B, H, W, 3]``) in [0, 1].

* Paired (full-reference): PSNR and SSIM (dm-pix, JAX-native; SSIM with an
  11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, as Wang et al. 2004),
  and MAE on the 0-255 scale (the Zero-DCE paper's Table 2).
* Unpaired (no-reference): mean brightness and LOE, the lightness order error
  of Wang et al. (NPE, TIP 2013): with L the per-pixel maximum over RGB,
  ``LOE = 1/m sum_x sum_y [L(x) >= L(y)] xor [Le(x) >= Le(y)]`` over all pixel
  pairs of the images down-sampled (bicubic, antialiased, like MATLAB's
  ``imresize``) so the shorter side is ``loe_size`` (100, as the reference
  MATLAB code, to keep m^2 pairs tractable). Lower is better.

NIQE is not offered: it needs a model fitted to a corpus of pristine images,
which we cannot ship.
"""

from __future__ import annotations

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

__all__ = ["psnr", "ssim", "mae_255", "brightness", "loe"]


def psnr(a, b) -> np.ndarray:
  """Peak signal-to-noise ratio in dB (``inf`` for identical images)."""
  a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
  mse = jnp.mean(jnp.square(a - b), axis=(-3, -2, -1))
  with np.errstate(divide="ignore"):
    return np.where(np.asarray(mse) == 0, np.inf,
                    np.asarray(dm_pix.psnr(a, b)))


def ssim(a, b) -> np.ndarray:
  """Structural similarity (mean over the valid window positions and RGB)."""
  return np.asarray(dm_pix.ssim(jnp.asarray(a, jnp.float32),
                                jnp.asarray(b, jnp.float32), max_val=1.0))


def mae_255(a, b) -> np.ndarray:
  """Mean absolute error on the 0-255 scale."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.mean(np.abs(a - b), axis=(-3, -2, -1)) * 255.0


def brightness(a) -> np.ndarray:
  """Mean intensity in [0, 1]."""
  return np.mean(np.asarray(a, np.float64), axis=(-3, -2, -1))


@jax.jit
def _order_disagreements(l0: jax.Array, l1: jax.Array) -> jax.Array:
  def row(carry, xs):
    a, b = xs
    return carry + jnp.sum((l0 >= a) != (l1 >= b)), None

  total, _ = jax.lax.scan(row, jnp.zeros((), jnp.int32), (l0, l1))
  return total


def loe(original, enhanced, *, loe_size: int = 100) -> float:
  """Lightness order error of ``enhanced`` w.r.t. ``original`` (one image)."""
  original = np.asarray(original, np.float32)
  enhanced = np.asarray(enhanced, np.float32)
  if original.shape != enhanced.shape:
    raise ValueError(f"shapes differ: {original.shape} vs {enhanced.shape}")
  h, w = original.shape[:2]
  r = loe_size / min(h, w)
  hs, ws = max(1, round(h * r)), max(1, round(w * r))
  maps = []
  for im in (original, enhanced):
    light = Image.fromarray(im.max(axis=-1), mode="F").resize(
        (ws, hs), Image.Resampling.BICUBIC)
    maps.append(jnp.asarray(np.asarray(light, np.float32).reshape(-1)))
  m = maps[0].size
  return float(_order_disagreements(maps[0], maps[1])) / m
