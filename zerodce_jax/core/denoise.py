"""Noise-aware denoising of an enhanced image, steered by the curves' gain.

The curves multiply the input's noise, per pixel and channel, by their
derivative ``g = dLE/dI`` (``curves.apply_at_strength``). The input's noise
is signal dependent (photon shot noise plus read noise),
``sigma_in^2(I) = a I + b``, estimated from the input itself
(``estimate_noise``). So the enhanced image carries noise of about
``sigma = g sigma_in(I)``, and ``denoise`` smooths exactly that much:

* the image is taken to an orthonormal opponent colour space (one luma, two
  chroma channels: white RGB noise stays white with the same sigma);
* luma: a self-guided filter (He et al., TPAMI 2013) whose regulariser is
  the local noise variance, ``eps = (k_l sigma)^2``: structure whose local
  variance is well above the noise is kept, flat noise is averaged;
* chroma (where the noise of dark regions is most visible): a wider guided
  filter, guided by the filtered luma, ``eps = (k_c sigma)^2``;
* the noise is estimated at a 2x2-binned scale: photos' noise is spatially
  correlated (demosaicking, JPEG), and the pixel-scale residual sees only
  its finest part, while the filters' windows remove the rest too;
* ``amount`` in [0, 1] scales ``k_l`` and ``k_c`` (0: nothing is changed).

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

__all__ = ["estimate_noise", "noise_sigma", "box_mean", "guided_filter",
           "to_opponent", "from_opponent", "denoise", "K_LUMA", "K_CHROMA",
           "LUMA_RADIUS", "CHROMA_RADIUS", "HALO"]

# At amount 1 (the k of eps = (k sigma)^2); `amount` scales them. Chosen
# from measurements (docs: "Better than the paper").
K_LUMA = 6.0
K_CHROMA = 4.0
LUMA_RADIUS = 2
CHROMA_RADIUS = 3
# How far the result reads: each guided filter takes two box means.
HALO = 2 * LUMA_RADIUS + 2 * CHROMA_RADIUS

_OPP = jnp.array([[3 ** -0.5, 3 ** -0.5, 3 ** -0.5],
                  [2 ** -0.5, 0.0, -(2 ** -0.5)],
                  [6 ** -0.5, -2 * 6 ** -0.5, 6 ** -0.5]])
_IMMERKAER = ((1, -2, 1), (-2, 4, -2), (1, -2, 1))


def to_opponent(rgb: jax.Array) -> jax.Array:
  """RGB -> (luma, chroma, chroma), an orthonormal transform."""
  return rgb @ _OPP.T.astype(rgb.dtype)


def from_opponent(ycc: jax.Array) -> jax.Array:
  """The inverse of ``to_opponent``."""
  return ycc @ _OPP.astype(ycc.dtype)


def _window_sum(x: jax.Array, radius: int) -> jax.Array:
  """Sum over the ``(2r+1)^2`` window (zeros beyond the array), as shifted
  copies added in a fixed order (separable: rows, then columns)."""
  h, w = x.shape[-3], x.shape[-2]
  pad = [(0, 0)] * (x.ndim - 3) + [(radius, radius), (0, 0), (0, 0)]
  xp = jnp.pad(x, pad)
  rows = sum(xp[..., i:i + h, :, :] for i in range(2 * radius + 1))
  pad = [(0, 0)] * (x.ndim - 3) + [(0, 0), (radius, radius), (0, 0)]
  rp = jnp.pad(rows, pad)
  return sum(rp[..., :, j:j + w, :] for j in range(2 * radius + 1))


def box_mean(x: jax.Array, *, radius: int, mask: jax.Array,
             count: jax.Array | None = None) -> jax.Array:
  """Mean of ``x`` over the valid pixels of each ``(2r+1)^2`` window.

  Args:
    x: ``[..., H, W, C]``.
    radius: the window radius (keyword-only, as the rest).
    mask: ``[..., H, W, 1]`` validity (1/0).
    count: ``_window_sum(mask, radius)`` if already computed.
  """
  count = _window_sum(mask, radius) if count is None else count
  return _window_sum(x * mask, radius) / jnp.maximum(count, 1)


def guided_filter(guide: jax.Array, src: jax.Array, eps: jax.Array, *,
                  radius: int, mask: jax.Array) -> jax.Array:
  """He et al.'s guided filter with a per-pixel regulariser.

  .. math::

     a = \\\\frac{\\\\overline{I p} - \\\\bar I \\\\bar p}{\\\\overline{I^2} -
         \\\\bar I^2 + \\\\bar\\\\epsilon}, \\\\quad b = \\\\bar p - a \\\\bar I,
     \\\\quad q = \\\\bar a\\\\, I + \\\\bar b

  (bars: ``box_mean`` over the window).

  Args:
    guide: ``[..., H, W, 1]`` guidance image ``I``.
    src: ``[..., H, W, C]`` image ``p`` to filter.
    eps: ``[..., H, W, 1]`` regulariser (a noise variance).
    radius, mask: as for ``box_mean``.
  """
  count = _window_sum(mask, radius)

  def box(v):
    return box_mean(v, radius=radius, mask=mask, count=count)

  mi, mp = box(guide), box(src)
  cov = box(guide * src) - mi * mp
  var = box(guide * guide) - mi * mi
  a = cov / (var + box(eps) + 1e-12)
  b = mp - a * mi
  return box(a) * guide + box(b)


def denoise(image: jax.Array, sigma: jax.Array, *, amount: jax.Array | float,
            mask: jax.Array | None = None) -> jax.Array:
  """Smooths the noise ``sigma`` out of an enhanced image (module doc).

  Args:
    image: ``[..., H, W, 3]`` enhanced image in [0, 1].
    sigma: its noise, ``[..., H, W, 3]`` (or ``[..., H, W, 1]``): ``gain *
      noise_sigma(input)``.
    amount: 0 (the image unchanged) to 1; scales ``K_LUMA`` and
      ``K_CHROMA`` (may be traced: one compiled function for every amount).
    mask: validity of the pixels (default: all valid).

  Returns:
    ``image``'s shape, in [0, 1].
  """
  if mask is None:
    mask = jnp.ones(image.shape[:-1] + (1,), image.dtype)
  amount = jnp.asarray(amount, image.dtype)
  var = jnp.mean(jnp.square(sigma), axis=-1, keepdims=True)
  ycc = to_opponent(image)
  y = ycc[..., :1]
  y_f = guided_filter(y, y, jnp.square(K_LUMA * amount) * var,
                      radius=LUMA_RADIUS, mask=mask)
  c_f = guided_filter(y_f, ycc[..., 1:], jnp.square(K_CHROMA * amount) * var,
                      radius=CHROMA_RADIUS, mask=mask)
  out = jnp.clip(from_opponent(jnp.concatenate([y_f, c_f], axis=-1)), 0, 1)
  return jnp.where(amount > 0, out, image)


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
  (every ``stride``-th pixel, all channels, valid 3x3 windows only) are cut
  into ``bins`` equal-count intensity bins between the 2% and 98% quantiles;
  each bin's variance is ``(1.4826 median|r|)^2`` (robust to edges and
  texture) and ``(a, b)`` the least-squares line through them, kept
  ``>= 0``.

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
  xp = jnp.pad(image, ((1, 1), (1, 1), (0, 0)))
  mp = jnp.pad(mask, ((1, 1), (1, 1), (0, 0)))
  taps = [(i, j) for i in range(3) for j in range(3)]
  r = sum(_IMMERKAER[i][j] * xp[i:i + h, j:j + w] for i, j in taps) / 6
  mu = sum(xp[i:i + h, j:j + w] for i, j in taps) / 9
  valid = sum(mp[i:i + h, j:j + w] for i, j in taps) >= 9  # whole window in
  keep = jnp.broadcast_to(valid, image.shape)[::stride, ::stride]
  r = jnp.where(keep, r[::stride, ::stride], jnp.nan).reshape(-1)
  mu = jnp.where(keep, mu[::stride, ::stride], jnp.nan).reshape(-1)
  edges = jnp.nanquantile(mu, jnp.linspace(0.02, 0.98, bins + 1))
  inside = (mu[None] >= edges[:-1, None]) & (mu[None] < edges[1:, None])
  sig = 1.4826 * jnp.nanmedian(jnp.where(inside, jnp.abs(r)[None], jnp.nan),
                               axis=1)
  m = jnp.nanmean(jnp.where(inside, mu[None], jnp.nan), axis=1)
  v = sig ** 2
  ok = jnp.isfinite(v) & jnp.isfinite(m)
  wts = ok.astype(jnp.float32)
  v, m = jnp.where(ok, v, 0), jnp.where(ok, m, 0)
  sw = jnp.sum(wts) + 1e-12
  mm, vm = jnp.sum(wts * m) / sw, jnp.sum(wts * v) / sw
  slope = (jnp.sum(wts * (m - mm) * (v - vm))
           / (jnp.sum(wts * (m - mm) ** 2) + 1e-12))
  a = jnp.maximum(slope, 0)
  b = jnp.where(slope < 0, vm, jnp.maximum(vm - a * mm, 0))
  return ((a * scale ** 2).astype(jnp.float32),
          (b * scale ** 2).astype(jnp.float32))
