"""Evaluation figures of the papers (not training losses).

Images are float ``[H, W, 3]`` (or batches ``[B, H, W, 3]``) in [0, 1].

* Paired (full-reference): PSNR, SSIM and MAE on the 0-255 scale (the
  Zero-DCE paper's Table 2). SSIM comes in two protocols, which differ by
  ~0.003 on LOL (0.559 vs 0.562 for the official Zero-DCE on the 15-pair
  LOL test):

  - ``ssim`` (``"gaussian"``): dm-pix, JAX-native, an 11x11 Gaussian window
    (sigma 1.5), population covariances, K1 0.01, K2 0.03, as Wang et al.
    2004 and its reference MATLAB code;
  - ``ssim_paper`` (``"paper"``): scikit-image's default
    ``structural_similarity(a, b, channel_axis=-1, data_range=1)``, which
    the widely quoted LOL figures (14.86 dB / 0.562) use: a 7x7 uniform
    window, sample covariances (``N / (N - 1)``), per channel, averaged
    over the positions where the window lies inside the image.
* Unpaired (no-reference): mean brightness and LOE, the lightness order error
  of Wang et al. (NPE, TIP 2013): with L the per-pixel maximum over RGB,
  ``LOE = 1/m sum_x sum_y [L(x) >= L(y)] xor [Le(x) >= Le(y)]`` over all pixel
  pairs of the images down-sampled (bicubic, antialiased, like MATLAB's
  ``imresize``) so the shorter side is ``loe_size`` (100, as the reference
  MATLAB code, to keep m^2 pairs tractable). Lower is better.

The no-reference NIQE (Mittal et al. 2013) is in ``core.niqe``, with the
pristine model of its official release (``THIRD_PARTY_NOTICES.md``).
"""

from __future__ import annotations

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

__all__ = ["psnr", "ssim", "ssim_paper", "SSIM_PROTOCOLS", "mae_255",
           "brightness", "loe"]

# ``zerodce eval --ssim``: which SSIM columns a table gets.
SSIM_PROTOCOLS = ("paper", "gaussian", "both")


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


def _box_valid(x: np.ndarray, k: int) -> np.ndarray:
  """Means over every ``k x k`` window lying inside the image (axes -3,
  -2 of ``[..., H, W, C]``), float64: ``[..., H-k+1, W-k+1, C]``."""
  c = np.cumsum(np.cumsum(x, axis=-3), axis=-2)
  c = np.pad(c, [(0, 0)] * (x.ndim - 3) + [(1, 0), (1, 0), (0, 0)])
  s = (c[..., k:, k:, :] - c[..., :-k, k:, :] - c[..., k:, :-k, :]
       + c[..., :-k, :-k, :])
  return s / (k * k)


def ssim_paper(a, b, *, win_size: int = 7, data_range: float = 1.0
               ) -> np.ndarray:
  r"""SSIM as scikit-image's default ``structural_similarity`` computes it
  (per channel, 7x7 uniform window, sample covariances), the protocol of
  the quoted LOL figures.

  .. math:: \mathrm{SSIM} = \frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}
    {(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)},
    \quad C_1 = (0.01 R)^2,\ C_2 = (0.03 R)^2

  with local means over ``win_size``-square uniform windows, variances and
  covariance scaled by ``N / (N - 1)`` (``N = win_size**2``), averaged over
  the window positions inside the image and over RGB (scikit-image crops
  ``(win_size - 1) // 2`` pixels off each border after filtering, which
  leaves exactly those positions).

  Args:
    a, b: ``[H, W, 3]`` or ``[B, H, W, 3]`` images in [0, 1].
    win_size: the window side (odd).
    data_range: ``R``, the images' range.

  Returns:
    The SSIM (shape ``[]`` or ``[B]``), float64.

  References:
    van der Walt et al., scikit-image (``skimage.metrics.
    structural_similarity``, defaults); Wang, Bovik, Sheikh, Simoncelli,
    "Image quality assessment: from error visibility to structural
    similarity", TIP 2004.
  """
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape or a.ndim not in (3, 4):
    raise ValueError(f"expected two [H, W, C] or [B, H, W, C] images of one "
                     f"shape, got {a.shape} and {b.shape}")
  if win_size % 2 == 0 or min(a.shape[-3:-1]) < win_size:
    raise ValueError(f"win_size must be odd and fit the image, got "
                     f"{win_size} for {a.shape[-3]}x{a.shape[-2]}")
  n = win_size * win_size
  cov_norm = n / (n - 1)
  ux, uy = _box_valid(a, win_size), _box_valid(b, win_size)
  vx = cov_norm * (_box_valid(a * a, win_size) - ux * ux)
  vy = cov_norm * (_box_valid(b * b, win_size) - uy * uy)
  vxy = cov_norm * (_box_valid(a * b, win_size) - ux * uy)
  c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
  s = ((2 * ux * uy + c1) * (2 * vxy + c2)
       / ((ux * ux + uy * uy + c1) * (vx + vy + c2)))
  return s.mean(axis=(-3, -2, -1))


def mae_255(a, b) -> np.ndarray:
  """Mean absolute error on the 0-255 scale."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.mean(np.abs(a - b), axis=(-3, -2, -1)) * 255.0


def colour_angle(a, b) -> np.ndarray:
  """Degrees between the mean colours of ``a`` and ``b`` ``[..., H, W, 3]``:

  .. math:: \\arccos \\frac{\\bar a \\cdot \\bar b}{|\\bar a|\\,|\\bar b|}

  (0: the same cast; brightness does not count).
  """
  ma = np.mean(np.asarray(a, np.float64), axis=(-3, -2))
  mb = np.mean(np.asarray(b, np.float64), axis=(-3, -2))
  cos = np.sum(ma * mb, -1) / (np.linalg.norm(ma, axis=-1)
                               * np.linalg.norm(mb, axis=-1) + 1e-12)
  return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


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
