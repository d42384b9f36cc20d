"""Noise-aware denoising of an enhanced image, steered by the curves' gain.

The curves multiply the input's noise, per pixel and channel, by their
derivative ``g = dLE/dI`` (``curves.apply_at_strength``). The input's noise
is signal dependent (photon shot noise plus read noise),
``sigma_in^2(I) = a I + b``, estimated from the input itself
(``estimate_noise``). So the enhanced image carries noise of about
``sigma = g sigma_in(I)``, and ``denoise`` smooths exactly that much:

* the image is taken to an orthonormal opponent colour space (one luma, two
  chroma channels: white RGB noise stays white with the same sigma);
* luma, fine grain: a self-guided filter (He et al., TPAMI 2013) whose
  regulariser is the local noise variance, ``eps = (K_LUMA sigma)^2``;
  then the texture it took is put back where the residual's local energy
  stands well above the noise (``K_DETAIL``): noise is removed, texture
  kept;
* luma, 2-8 px blotches (what JPEG blocks and correlated noise leave): the
  same filter on 2x2 block means (``K_BLOTCH``), its change up-sampled;
* chroma (where the noise of dark photos is most visible, and JPEG keeps
  it at half resolution anyway): self-guided at half resolution
  (``K_CHROMA``), the finer chroma kept where it stands above the noise
  (colour detail) and ``CHROMA_FINE`` of it elsewhere;
* the noise is estimated at a 2x2-binned scale too (photos' noise is
  spatially correlated: demosaicking, JPEG), and noise below
  ``NOISE_VISIBLE`` (under a grey level) is left alone;
* ``amount`` in [0, 1] scales every ``k`` (0: nothing is changed).

Every window sum is a sum of shifted copies (no cumulative sums), and every
mean is taken over the valid pixels of a ``mask``: a padded canvas, a halo
tile or a strip gives, inside the image, exactly what the whole image
gives. ``HALO`` is how far the result reads.

Arrays: ``[H, W, C]`` float in [0, 1]; masks ``[H, W, 1]`` (1 inside the
image). Everything is ``jnp`` and jit-safe.

References:
  K. He, J. Sun, X. Tang, "Guided Image Filtering", TPAMI 2013.
  S. Immerkaer, "Fast Noise Variance Estimation", CVIU 1996.
  A. Foi et al., "Practical Poissonian-Gaussian noise modeling and fitting
  for single-image raw-data", TIP 2008 (the ``a I + b`` model).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from zerodce_jax.core.guided import box_mean, down, guided_filter, up

__all__ = ["estimate_noise", "noise_sigma", "to_opponent", "from_opponent",
           "denoise", "K_LUMA", "K_CHROMA",
           "LUMA_RADIUS", "CHROMA_RADIUS", "HALO"]

# At amount 1 (the k of eps = (k sigma)^2, and of the detail test);
# `amount` scales them. Chosen from measurements (docs: "Better than the
# paper").
K_LUMA = 3.0
K_DETAIL = 1.5
K_BLOTCH = 2.0
K_CHROMA = 3.0
CHROMA_FINE = 0.0
LUMA_RADIUS = 2
CHROMA_RADIUS = 2
LOW_RADIUS = 2
GRAIN = 0.0
NOISE_VISIBLE = 2.0 / 255
SCALE = 2  # the blotch and chroma stages work at 1/SCALE
# How far the result reads (each guided filter takes two box means; the
# low-resolution stages count in their pixels, plus one for up-sampling),
# rounded up to whole blocks of 4 so that tiles and strips keep the block
# grid of the whole image.
HALO = -(-(2 * LUMA_RADIUS + 1
           + SCALE * (2 * max(LOW_RADIUS, CHROMA_RADIUS) + 2)) // 4) * 4

_OPP = np.array([[3 ** -0.5, 3 ** -0.5, 3 ** -0.5],
                 [2 ** -0.5, 0.0, -(2 ** -0.5)],
                 [6 ** -0.5, -2 * 6 ** -0.5, 6 ** -0.5]], np.float32)
_IMMERKAER = ((1, -2, 1), (-2, 4, -2), (1, -2, 1))
# estimate_noise's histograms: intensity in 1/_FINE steps; |r| on a log
# scale from _R_MIN to 1 in _R_BINS steps (1.1% apart)
_FINE = 2048
_R_MIN, _R_BINS = 1e-5, 1024
_R_STEP = float(-np.log(_R_MIN) / _R_BINS)


def to_opponent(rgb: jax.Array) -> jax.Array:
  """RGB -> (luma, chroma, chroma), an orthonormal transform."""
  return rgb @ jnp.asarray(_OPP.T, rgb.dtype)


def from_opponent(ycc: jax.Array) -> jax.Array:
  """The inverse of ``to_opponent``."""
  return ycc @ jnp.asarray(_OPP, ycc.dtype)


def denoise(image: jax.Array, sigma: jax.Array, *, amount: jax.Array | float,
            mask: jax.Array | None = None,
            sigma_low: jax.Array | None = None) -> jax.Array:
  """Smooths the noise ``sigma`` out of an enhanced image (module doc).

  Args:
    image: ``[..., H, W, 3]`` enhanced image in [0, 1]; ``H`` and ``W``
      multiples of ``SCALE``.
    sigma: its noise, ``[..., H, W, 3]`` (or ``[..., H, W, 1]``): ``gain *
      noise_sigma(input)``.
    amount: 0 (the image unchanged) to 1; scales every ``K_*`` (may be
      traced: one compiled function for every amount).
    mask: ``[..., H, W, 1]`` validity of the pixels (default: all valid).
    sigma_low: the noise left after averaging ``SCALE x SCALE`` blocks,
      per pixel (``gain * noise_sigma`` of an ``estimate_noise(...,
      scale=SCALE)`` divided by ``SCALE``): what the low-resolution stages
      smooth. Default: ``sigma / SCALE`` (white noise).

  Returns:
    ``image``'s shape, in [0, 1].
  """
  if sigma_low is None:
    sigma_low = sigma / SCALE
  planes = jnp.moveaxis(image, -1, -3)
  mask = (jnp.ones(planes.shape[-2:], image.dtype) if mask is None
          else mask[..., 0])
  amount = jnp.asarray(amount, image.dtype)
  amount = jnp.reshape(amount, amount.shape[:max(0, amount.ndim - 3)])
  out = denoise_planes(planes, variance(sigma), variance(sigma_low),
                       amount=amount, mask=mask)
  return jnp.moveaxis(out, -3, -1)


def variance(sigma: jax.Array, *, axis: int = -1) -> jax.Array:
  """The visible noise variance plane of ``sigma`` ``[..., H, W, C]`` (or
  its channels along ``axis``): its mean square over the channels less
  ``NOISE_VISIBLE^2`` (noise below what a viewer sees reads as a
  photograph's fine grain; smoothing it costs texture), at least 0."""
  return jnp.maximum(jnp.mean(jnp.square(sigma), axis=axis)
                     - NOISE_VISIBLE ** 2, 0)


def denoise_planes(planes: jax.Array, var: jax.Array, var_low: jax.Array, *,
                   amount: jax.Array | float, mask: jax.Array,
                   fine: bool = True) -> jax.Array:
  """``denoise`` on planes: ``planes`` ``[..., 3, H, W]`` (RGB), the noise
  variance at full resolution and per pixel after ``SCALE x SCALE``
  averaging (``variance``), ``[..., H, W]``, and ``mask`` ``[..., H, W]``.
  ``fine=False`` leaves out the full-resolution luma stage (the pixel-scale
  grain stays, the 2-8 px blotches and the chroma are smoothed): a
  quarter of the cost, what video gets. Returns ``[..., 3, H, W]`` in
  [0, 1]."""
  f = SCALE
  dtype = planes.dtype
  amount = jnp.asarray(amount, dtype)  # a scalar, or one per leading index
  k2 = jnp.square(amount)[..., None, None]
  var_lo = down(var_low, mask, f)[0]
  m_lo = down(mask, mask, f)[1]
  r, g, b = planes[..., 0, :, :], planes[..., 1, :, :], planes[..., 2, :, :]
  opp = _OPP.astype(np.float64)
  y = opp[0, 0] * (r + g + b)
  c = jnp.stack([opp[1, 0] * (r - b), opp[2, 0] * (r + b) + opp[2, 1] * g],
                axis=-3)

  # luma: fine grain (a self-guided filter), then the texture the filter
  # took where the residual's local energy is well above the noise, then
  # 2-8 px blotches, then a share of the grain back
  if fine:
    y1 = guided_filter(y, y, K_LUMA ** 2 * k2 * var, radius=LUMA_RADIUS,
                       mask=mask)
    res = y - y1
    energy = box_mean(res * res, radius=1, mask=mask)
    keep = jnp.clip(1 - K_DETAIL ** 2 * k2 * var / (energy + 1e-12), 0, 1)
    y2 = y1 + keep * res
  else:
    y2 = y
  y_lo = down(y2, mask, f)[0]
  y3 = y2 + up(guided_filter(y_lo, y_lo, K_BLOTCH ** 2 * k2 * var_lo,
                             radius=LOW_RADIUS, mask=m_lo) - y_lo, m_lo, f)
  y4 = y3 + GRAIN * (y - y3)
  # chroma, where dark photos' noise shows most (and JPEG keeps it at half
  # resolution anyway): self-guided at 1/f; the finer chroma kept where it
  # stands well above the noise (colour detail), CHROMA_FINE of it where
  # it is noise
  mc = jnp.expand_dims(mask, -3)  # the chroma planes' mask
  m_lo_c = jnp.expand_dims(m_lo, -3)
  c_lo = down(c, mc, f)[0]
  c_lo_f = guided_filter(c_lo, c_lo, (K_CHROMA ** 2 * k2 * var_lo)[
      ..., None, :, :], radius=CHROMA_RADIUS, mask=m_lo_c)
  fine_c = c - up(c_lo, m_lo_c, f)
  energy_c = box_mean(jnp.sum(fine_c * fine_c, axis=-3), radius=1,
                      mask=mask) / 2
  keep_c = jnp.clip(1 - K_DETAIL ** 2 * k2 * var / (energy_c + 1e-12),
                    CHROMA_FINE, 1)
  c2 = up(c_lo_f, m_lo_c, f) + jnp.expand_dims(keep_c, -3) * fine_c
  c1_, c2_ = c2[..., 0, :, :], c2[..., 1, :, :]
  # back to RGB (the transform is orthonormal: its transpose)
  r2 = opp[0, 0] * y4 + opp[1, 0] * c1_ + opp[2, 0] * c2_
  g2 = opp[0, 1] * y4 + opp[2, 1] * c2_
  b2 = opp[0, 2] * y4 + opp[1, 2] * c1_ + opp[2, 2] * c2_
  out = jnp.clip(jnp.stack([r2, g2, b2], axis=-3), 0, 1)
  return jnp.where(amount[..., None, None, None] > 0, out,
                   planes).astype(dtype)


def noise_sigma(image: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
  """The input's noise standard deviation, ``sqrt(a I + b)``."""
  return jnp.sqrt(jnp.maximum(a * image + b, 1e-12))


def estimate_noise(image: jax.Array, *, mask: jax.Array | None = None,
                   bins: int = 8, stride: int = 2, scale: int = 2
                   ) -> tuple[jax.Array, jax.Array]:
  """Signal-dependent noise of an image, ``sigma^2(I) = a I + b``.

  The residual is the image correlated with Immerkaer's mask
  ``[[1, -2, 1], [-2, 4, -2], [1, -2, 1]] / 6`` (zero on planes and ramps,
  unit gain on white noise); the local intensity is the 3x3 mean. Samples
  (every ``stride``-th pixel, all channels, valid 3x3 windows only) are
  cut into ``bins`` equal-count intensity bins between the 2% and 98%
  quantiles; each bin's variance is ``(1.4826 median|r|)^2`` (robust to
  edges and texture) and ``(a, b)`` the least-squares line through them,
  kept ``>= 0``. Quantiles and medians are read off histograms (intensity
  in steps of 1/2048, ``|r|`` on a log scale in steps of 1.1%), which cost
  one pass over the samples where sorting them would cost a hundred.

  With ``scale > 1`` the estimate is made on the image averaged over
  ``scale x scale`` blocks (those wholly inside ``mask``) and scaled back by
  ``scale^2``: the per-pixel sigma of the white noise that would leave as
  much noise at that scale. White noise gives the full-resolution estimate;
  the correlated noise of JPEG photos, what a filter of that reach has to
  remove.

  Args:
    image: ``[H, W, C]`` input in [0, 1] (the unenhanced image).
    mask: ``[H, W, 1]`` validity (padding excluded), default all.
    bins, stride, scale: as above (keyword-only).

  Returns:
    ``(a, b)`` float32 scalars.
  """
  h, w, c = image.shape
  if mask is None:
    mask = jnp.ones((h, w, 1), image.dtype)
  if scale > 1:
    h, w = h // scale, w // scale

    def blocks(v):
      v = v[:h * scale, :w * scale]
      return v.reshape(h, scale, w, scale, v.shape[-1]).mean(axis=(1, 3))

    image, mask = blocks(image), (blocks(mask) >= 1).astype(image.dtype)
    stride = max(1, stride // scale)
  image = image.astype(jnp.float32)
  xp = jnp.pad(image, ((1, 1), (1, 1), (0, 0)))
  mp = jnp.pad(mask.astype(jnp.float32), ((1, 1), (1, 1), (0, 0)))
  taps = [(i, j) for i in range(3) for j in range(3)]
  r = sum(_IMMERKAER[i][j] * xp[i:i + h, j:j + w] for i, j in taps) / 6
  mu = sum(xp[i:i + h, j:j + w] for i, j in taps) / 9
  valid = sum(mp[i:i + h, j:j + w] for i, j in taps) >= 9  # whole window in
  keep = jnp.broadcast_to(valid, image.shape)[::stride, ::stride].reshape(-1)
  r = jnp.abs(r[::stride, ::stride]).reshape(-1)
  mu = jnp.clip(mu[::stride, ::stride].reshape(-1), 0, 1)
  # 1. equal-count intensity bins between the 2% and 98% quantiles, read
  #    off a fine histogram of the intensity
  fine = jnp.minimum((mu * _FINE).astype(jnp.int32), _FINE - 1)
  hist = jnp.zeros(_FINE, jnp.float32).at[fine].add(keep.astype(jnp.float32))
  cdf = jnp.cumsum(hist) / jnp.maximum(jnp.sum(hist), 1)
  upper = jnp.arange(1, _FINE + 1) / _FINE  # a fine bin's upper intensity
  edges = jnp.interp(jnp.linspace(0.02, 0.98, bins + 1), cdf, upper)
  k = jnp.sum(mu[:, None] >= edges[None, 1:-1], axis=1)
  inside = keep & (mu >= edges[0]) & (mu <= edges[-1])
  k = jnp.where(inside, k, bins)  # an overflow bin, dropped
  # 2. each bin's median |r| off a log-spaced histogram of |r| in that bin
  lr = (jnp.log(jnp.maximum(r, _R_MIN)) - jnp.log(_R_MIN)) / _R_STEP
  q = jnp.clip(lr.astype(jnp.int32), 0, _R_BINS - 1)
  joint = jnp.zeros((bins + 1) * _R_BINS, jnp.float32).at[
      k * _R_BINS + q].add(1.0).reshape(bins + 1, _R_BINS)[:bins]
  count = jnp.sum(joint, axis=1)
  cum = jnp.cumsum(joint, axis=1)
  half = 0.5 * count[:, None]
  j = jnp.sum(cum < half, axis=1)  # the bin holding the median
  below = jnp.take_along_axis(cum, jnp.maximum(j - 1, 0)[:, None], 1)[:, 0]
  below = jnp.where(j > 0, below, 0)
  here = jnp.take_along_axis(joint, j[:, None], 1)[:, 0]
  frac = jnp.clip((0.5 * count - below) / jnp.maximum(here, 1), 0, 1)
  med = jnp.exp(jnp.log(_R_MIN) + (j + frac) * _R_STEP)
  m = (jnp.zeros(bins + 1, jnp.float32).at[k].add(mu)[:bins]
       / jnp.maximum(count, 1))
  v = (1.4826 * med) ** 2
  wts = (count > 0).astype(jnp.float32)
  v, m = jnp.where(count > 0, v, 0), jnp.where(count > 0, m, 0)
  sw = jnp.sum(wts) + 1e-12
  mm, vm = jnp.sum(wts * m) / sw, jnp.sum(wts * v) / sw
  slope = (jnp.sum(wts * (m - mm) * (v - vm))
           / (jnp.sum(wts * (m - mm) ** 2) + 1e-12))
  a = jnp.maximum(slope, 0)
  b = jnp.where(slope < 0, vm, jnp.maximum(vm - a * mm, 0))
  return ((a * scale ** 2).astype(jnp.float32),
          (b * scale ** 2).astype(jnp.float32))
