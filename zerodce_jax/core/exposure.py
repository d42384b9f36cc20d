"""Exposure control at inference: the curve strength that gives an image a
chosen mean brightness.

The curve maps are computed once; the mean brightness of the output as a
function of the strength ``s`` (``curves.scale_maps``),

.. math::

   B(s) = \\operatorname{mean}\\bigl(LE_N(I;\\ a'(s))\\bigr),

is evaluated on a grid of strengths over a regular subsample of the pixels
(only the cheap curve application is repeated, never the network), and the
strength for a target ``E`` is read off the grid and refined once inside
the bracket (``strength_for``). ``B`` is continuous and, for the brightening
maps of dark images, increasing; the grid is made monotone (a running
maximum) before it is inverted. Everything is ``jnp``: it runs inside the
compiled calls of the image and the video paths alike.

Arrays: images ``[H, W, 3]`` in [0, 1], maps ``[H, W, 3n]`` (paper sign).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from zerodce_jax.core import curves

__all__ = ["brightness_grid", "strength_for", "coarse_strengths",
           "COARSE_STRENGTHS", "MAX_STRENGTH", "FINE_POINTS"]

# The most an exposure may raise the curves: twice the model's maps. Further,
# the noise gain outgrows what denoising can take, and night scenes, whose
# dark sky is most of the picture, are turned into day to reach a fixed mean
# (docs: "Better than the paper", where the cap was chosen). A `--strength`
# given by hand may go further (apps.quality.MAX_STRENGTH).
MAX_STRENGTH = 2.0


def coarse_strengths(max_strength: float) -> np.ndarray:
  """The grid ``strength_for`` reads ``B(s)`` on: 9 points in [0, 1], 16
  geometric ones in [1.1, ``max_strength``]."""
  return np.concatenate([np.linspace(0.0, 1.0, 9),
                         np.geomspace(1.1, max_strength, 16)])


COARSE_STRENGTHS = coarse_strengths(MAX_STRENGTH)
FINE_POINTS = 17


def brightness_grid(image: jax.Array, maps: jax.Array,
                    strengths: jax.Array, *, iterations: int,
                    shoulder: tuple[float, float] | None = None,
                    mask: jax.Array | None = None) -> jax.Array:
  """``B(s)`` for each ``s`` of ``strengths``: the mean over pixels (where
  ``mask`` is 1) and channels of the output at that strength.

  Args:
    image: ``[H, W, 3]`` (a subsample of the image is enough).
    maps: its curve maps ``[H, W, 3n]``.
    strengths: ``[K]``.
    iterations: curve iterations (keyword-only, as every option below).
    shoulder: the highlight shoulder (``curves.apply_at_strength``), or
      None for none.
    mask: optional ``[H, W, 1]`` validity of the pixels.

  Returns:
    ``[K]`` float32.
  """
  m = jnp.ones(image.shape[:-1] + (1,), image.dtype) if mask is None else mask
  count = jnp.maximum(jnp.sum(m) * image.shape[-1], 1)

  def mean_at(s):
    y, _ = curves.apply_at_strength(image, maps, s, iterations=iterations,
                                    shoulder=shoulder)
    return jnp.sum(y * m) / count

  return jax.lax.map(mean_at, jnp.asarray(strengths, image.dtype))


def _invert(strengths: jax.Array, means: jax.Array,
            target: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``s`` with ``B(s) = target`` on the monotone envelope of the grid
  (linear between points), and the left index of its bracket."""
  env = jax.lax.cummax(means)
  k = env.shape[0]
  i = jnp.clip(jnp.searchsorted(env, target, side="left") - 1, 0, k - 2)
  lo, hi = env[i], env[i + 1]
  f = jnp.where(hi > lo, (target - lo) / jnp.where(hi > lo, hi - lo, 1), 0)
  s = strengths[i] + jnp.clip(f, 0, 1) * (strengths[i + 1] - strengths[i])
  s = jnp.where(target <= env[0], strengths[0], s)
  return jnp.where(target >= env[-1], strengths[-1], s), i


def strength_for(image: jax.Array, maps: jax.Array, target, *,
                 iterations: int,
                 shoulder: tuple[float, float] | None = None,
                 mask: jax.Array | None = None,
                 max_strength: float | None = None) -> jax.Array:
  """The strength whose output has mean brightness ``target``.

  Args:
    image: ``[H, W, 3]``, typically every 4th row and column of the image.
    maps: its curve maps.
    target: the mean brightness ``E`` in (0, 1) (a scalar, may be traced).
    iterations, shoulder, mask: as for ``brightness_grid``.
    max_strength: the most it may give (a Python float; default
      ``MAX_STRENGTH`` as the module has it when traced).

  Returns:
    ``s`` in ``[0, max_strength]`` (a scalar): the ends when ``E`` is out of
    reach (darker than the input: 0; brighter than the curve goes: the
    most).
  """
  kw = dict(iterations=iterations, shoulder=shoulder, mask=mask)
  target = jnp.asarray(target, image.dtype)
  coarse = jnp.asarray(coarse_strengths(
      MAX_STRENGTH if max_strength is None else max_strength), image.dtype)
  means = brightness_grid(image, maps, coarse, **kw)
  s, i = _invert(coarse, means, target)
  fine = coarse[i] + (coarse[i + 1] - coarse[i]) * jnp.linspace(
      0, 1, FINE_POINTS, dtype=image.dtype)
  s_fine, _ = _invert(fine, brightness_grid(image, maps, fine, **kw), target)
  inside = (target > means[0]) & (target < jnp.max(means))
  return jnp.where(inside, s_fine, s)
