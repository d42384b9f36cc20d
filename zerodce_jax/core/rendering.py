"""The controlled curves: an image and its curve maps in, the enhanced and
denoised image out, in one pure function for every path (photos in strips
or tiles, video frames, previews).

What is applied is a short per-image vector ``p`` (``NUM_PARAMS`` floats,
``pack_params``): the strength of each channel's curves (``p[0:3]``, from
``core.exposure.plan_strengths``: exposure and colour in one), the
denoising amount (``p[3]``) and the input's noise at two scales
(``p[4:8]``: ``(a, b)`` of ``core.denoise.estimate_noise`` at full
resolution and at 2x2 blocks). Then

* the curves at those strengths, with the highlight shoulder, and their
  exact gain ``g = dLE/dI`` (``core.curves.apply_at_strength``);
* the noise they leave, ``g sigma(I)`` at each scale (``sigma_low`` is the
  2x2-block noise per pixel, ``sqrt(a_2 I + b_2) / 2``), removed by
  ``core.denoise.denoise``.

The maps come in at the image's resolution; ``maps_from_low`` brings a
Zero-DCE map stack estimated at ``1/factor`` of it up to full resolution
(linearly, the default photo path; or along the image's edges,
``core.guided.guided_upsample``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from zerodce_jax.core import curves, denoise, guided

__all__ = ["render", "pack_params", "maps_from_low", "noise_variances",
           "NUM_PARAMS",
           "MAP_RADIUS", "MAP_EPS", "map_reach"]

NUM_PARAMS = 8
# guided up-sampling of curve maps: the window radius at the low
# resolution, and the regulariser (a luma variance: edges of a few levels
# and more are followed)
MAP_RADIUS = 1
MAP_EPS = (4 / 255) ** 2


def map_reach(factor: int, *, guided_maps: bool = False) -> int:
  """Full-resolution pixels ``maps_from_low`` reads on each side: the
  up-sampling (and with ``guided_maps`` two box means), at ``1/factor``."""
  return factor * ((2 * MAP_RADIUS + 2) if guided_maps else 2)


def pack_params(strengths, amount: float, noise) -> np.ndarray:
  """``[NUM_PARAMS]`` float32: per-channel strengths (a scalar is used for
  all three), the denoising amount and the noise ``(a1, b1, a2, b2)``."""
  s = np.broadcast_to(np.asarray(strengths, np.float32), (3,))
  n = np.zeros(4, np.float32) if noise is None else np.asarray(
      noise, np.float32).reshape(4)
  return np.concatenate([s, [np.float32(amount)], n]).astype(np.float32)


def maps_from_low(image: jax.Array, low: jax.Array, *, factor: int,
                  mask: jax.Array, low_mask: jax.Array | None = None,
                  guided_maps: bool = False) -> jax.Array:
  """Curve maps estimated at ``1/factor`` of the image, up-sampled to it:
  linearly (each map sample at the centre of its ``factor x factor``
  block; the samples beyond the image repeat its edge), or with
  ``guided_maps`` along the image's luma (``guided.guided_upsample``).
  Planes: ``image`` ``[3, H, W]``, ``low`` ``[C, H/factor, W/factor]``,
  ``mask`` ``[H, W]``; returns ``[C, H, W]`` in [-1, 1]."""
  if not guided_maps:
    return guided.up_linear(low.astype(image.dtype), factor)
  luma = jnp.mean(image, axis=-3)
  up = guided.guided_upsample(luma, low.astype(image.dtype), factor=factor,
                              radius=MAP_RADIUS, eps=MAP_EPS, mask=mask,
                              low_mask=low_mask)
  return jnp.clip(up, -1, 1)


def render(image: jax.Array, maps: jax.Array, params: jax.Array, *,
           iterations: int, shoulder: tuple[float, float] | None,
           mask: jax.Array | None = None, denoised: bool = True,
           fine: bool = True) -> jax.Array:
  """The curves at ``params``' strengths, then denoising (module doc).

  Planes throughout (``core.guided``: on a CPU, a trailing axis of three
  channels keeps the filters from vectorising).

  Args:
    image: ``[..., 3, H, W]`` in [0, 1].
    maps: its curve maps (paper sign), ``[..., 3n, H, W]`` or one shared
      map ``[..., 3, H, W]``.
    params: ``[..., NUM_PARAMS]`` (``pack_params``), one per image.
    iterations, shoulder: as for ``curves.apply_at_strength``.
    mask: ``[..., H, W]`` validity of the pixels (padding, halos), default
      all.
    denoised: whether to denoise at all (a Python bool: False compiles the
      curves alone).
    fine: the denoiser's full-resolution luma stage too (``denoise.
      denoise_planes``; False: its 2x2-block stages only, for video).

  Returns:
    ``image``'s shape, in [0, 1].
  """
  p = params[..., :, None, None]  # [..., NUM_PARAMS, 1, 1]
  y, gain = curves.apply_at_strength(image, maps, p[..., 0:3, :, :],
                                     iterations=iterations,
                                     shoulder=shoulder, axis=-3)
  if not denoised:
    return y
  # the curves computed once: fused into what reads them (the variances,
  # the filters' windows), XLA:CPU would recompute their eight steps there
  y, gain = jax.lax.optimization_barrier((y, gain))
  if mask is None:
    mask = image[..., 0, :, :] * 0 + 1  # not a constant: XLA would fold it
  var, var_low = noise_variances(image, gain, params, axis=-3)
  var, var_low = jax.lax.optimization_barrier((var, var_low))
  return denoise.denoise_planes(y, var, var_low, amount=params[..., 3],
                                mask=mask, fine=fine)


def noise_variances(image: jax.Array, gain: jax.Array, params: jax.Array, *,
                    axis: int) -> tuple[jax.Array, jax.Array]:
  """The visible noise variance the curves leave, at full resolution and
  per pixel after ``SCALE x SCALE`` averaging, from ``sigma^2 = g^2 (a I +
  b)`` (``params[..., 4:8]``) without square roots: the mean over the
  channels (``axis`` of ``image`` and ``gain``) less ``NOISE_VISIBLE^2``,
  at least 0 (``denoise.variance``). ``[..., H, W]`` each."""
  floor = denoise.NOISE_VISIBLE ** 2
  n = image.shape[axis]

  def var_of(a, b, scale):  # the mean over the channels, as slices (a
    total = 0               # small reduction axis vectorises poorly)
    for ch in range(n):
      g = jnp.take(gain, ch, axis=axis)
      total = total + g * g * jnp.maximum(
          a * jnp.take(image, ch, axis=axis) + b, 0)
    return jnp.maximum(total / (n * scale * scale) - floor, 0)

  p = params[..., None, None, :]
  return (var_of(p[..., 4], p[..., 5], 1),
          var_of(p[..., 6], p[..., 7], denoise.SCALE))
