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

**Per scene and per signal** (``plan_strengths``, what ``--exposure auto``
runs). One fixed mean is the wrong goal for most photos: a night scene whose
dark sky is most of the picture is turned into day to reach it, and a
near-black JPEG holds too little signal to be lifted that far without its
noise and block artifacts taking over. ``plan_strengths`` reads, on the
same grid of strengths, three statistics of the output: its channel means,
the mean luma of the input's brightest ``key_share`` of pixels (the scene's
*key*: where its light is), and the amplified noise ``g(s) sigma(I)`` of
its darkest ``dark_share`` (``curves.apply_at_strength`` gives the gain
``g``, ``core.denoise.noise_sigma`` the input's noise). Its strength is the
smaller of

* ``s_key``: the key reaches ``key_target`` (a normally exposed scene puts
  its bright parts there, whatever their share of the picture: an interior
  is lifted fully, a night street keeps its dark sky), and
* ``s_signal``: the dark regions' amplified noise grows to ``noise_growth``
  times the model's own (strength 1), or to ``noise_floor`` if that is
  more (a clean image is lifted as far as the key asks),

at least ``min_strength`` (1: never darker than the model's own curves) and
at most ``max_strength``. Then each channel gets its own strength so that
the channel means meet ``core.colour.balance_targets``: the cast is
corrected by the curves themselves, strongest in the shadows and midtones,
and the highlight shoulder keeps bright lights' colour.

Arrays: images ``[H, W, 3]`` in [0, 1], maps ``[H, W, 3n]`` (paper sign).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from zerodce_jax.core import colour, curves, denoise

__all__ = ["brightness_grid", "strength_for", "coarse_strengths",
           "COARSE_STRENGTHS", "MAX_STRENGTH", "FINE_POINTS", "SceneRule",
           "curve_statistics", "plan_strengths", "plan_strengths_grid"]

# The most the automatic rules may raise the curves: twice the model's
# maps. Further, the noise gain outgrows what denoising can take, and night
# scenes, whose dark sky is most of the picture, are turned into day (a cap
# study on the LOL pairs chose it for the fixed-mean rule; docs: "Better than
# the paper"). A `--strength` or an `--exposure E` given by hand may go to
# apps.quality.MAX_STRENGTH.
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


@dataclasses.dataclass(frozen=True)
class SceneRule:
  """The settings of the per-scene, per-signal exposure (module doc).

  Attributes:
    key_share: the brightest share of the pixels (by input luma) whose
      mean luma is the scene's key.
    key_target: the key's level in the output.
    dark_share: the darkest share of the pixels whose amplified noise
      bounds the strength (pixels at 0, clipped black, left out).
    noise_growth: how many times the model's own amplified noise the dark
      regions may carry.
    noise_floor: amplified noise (standard deviation, 0-1 scale) allowed
      whatever the model's own.
    min_strength: the least it gives (1: never darker than the model).
    max_strength: the most it gives.
  """
  key_share: float = 0.15
  key_target: float = 0.65
  dark_share: float = 0.3
  noise_growth: float = 3.0
  noise_floor: float = 4 / 255
  min_strength: float = 1.0
  max_strength: float = MAX_STRENGTH


def _weights(image: jax.Array, mask: jax.Array, *, dark_share: float,
             key_share: float) -> tuple[jax.Array, jax.Array]:
  """``[H, W, 1]`` 0/1 weights of the darkest ``dark_share`` (above 0.5/255)
  and the brightest ``key_share`` of the valid pixels, by luma."""
  luma = jnp.mean(image, -1, keepdims=True)
  valid = mask > 0
  v = jnp.where(valid, luma, jnp.nan).reshape(-1)
  lo, hi = jnp.nanquantile(v, jnp.asarray([dark_share, 1 - key_share]))
  dark = valid & (luma <= lo) & (luma > 0.5 / 255)
  key = valid & (luma >= hi)
  return dark.astype(image.dtype), key.astype(image.dtype)


def plan_strengths_grid(max_strength: float) -> np.ndarray:
  """The strengths ``plan_strengths`` reads the statistics at: 5 points in
  [0, 1], 8 geometric ones in [1.1, ``max_strength``] (a secant step on
  the curve itself then refines each channel's strength)."""
  return np.concatenate([np.linspace(0.0, 1.0, 5),
                         np.geomspace(1.1, max_strength, 8)])


def curve_statistics(image: jax.Array, maps: jax.Array,
                     strengths: jax.Array, *, iterations: int,
                     shoulder: tuple[float, float] | None,
                     sigma: jax.Array, mask: jax.Array, dark: jax.Array,
                     key: jax.Array) -> tuple[jax.Array, jax.Array,
                                              jax.Array]:
  """The output's statistics at each strength.

  Args:
    image, maps: ``[H, W, 3]`` and ``[H, W, 3n]`` (a subsample is enough).
    strengths: ``[K]``, or ``[K, 3]`` (one per channel).
    iterations, shoulder: as for ``curves.apply_at_strength``.
    sigma: ``[H, W, 3]`` the input's noise (``denoise.noise_sigma``).
    mask, dark, key: ``[H, W, 1]`` weights: valid pixels, the dark set,
      the key set.

  Returns:
    ``(means [K, 3], key_luma [K], dark_noise [K])``: channel means over
    the valid pixels, mean luma over ``key``, mean amplified noise
    ``g sigma`` (over channels) over ``dark``.
  """
  n_valid = jnp.maximum(jnp.sum(mask), 1)
  n_key = jnp.maximum(jnp.sum(key), 1)
  n_dark = jnp.maximum(jnp.sum(dark), 1)

  def at(s):
    y, g = curves.apply_at_strength(image, maps, s, iterations=iterations,
                                    shoulder=shoulder)
    means = jnp.sum(y * mask, axis=(0, 1)) / n_valid
    key_luma = jnp.sum(jnp.mean(y, -1, keepdims=True) * key) / n_key
    noise = jnp.sum(jnp.mean(g * sigma, -1, keepdims=True) * dark) / n_dark
    return means, key_luma, noise

  # vectorised over the strengths (a subsample is small): one fused pass,
  # where a loop over them costs several times more on a CPU
  return jax.lax.map(at, jnp.asarray(strengths, image.dtype))


def _invert_rows(strengths, values, targets):
  """``_invert`` for each column of ``values`` ``[K, C]`` and ``targets``
  ``[C]``; returns ``[C]`` strengths."""
  return jax.vmap(lambda v, t: _invert(strengths, v, t)[0],
                  in_axes=(1, 0))(values, targets)


def plan_strengths(image: jax.Array, maps: jax.Array, *, iterations: int,
                   shoulder: tuple[float, float] | None,
                   noise: tuple[jax.Array, jax.Array],
                   mask: jax.Array | None = None,
                   target: jax.Array | float | None = None,
                   strength: jax.Array | float | None = None,
                   rule: SceneRule | None = None,
                   colour_amount: jax.Array | float = 0.0,
                   max_strength: float | None = None
                   ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The per-channel strengths of an image (module doc).

  Args:
    image: ``[H, W, 3]``, a regular subsample of the image.
    maps: its curve maps there.
    iterations, shoulder: as for ``curves.apply_at_strength``.
    noise: the input's ``(a, b)`` (``denoise.estimate_noise``).
    mask: ``[H, W, 1]`` validity (default all).
    target: a mean brightness to reach (the fixed-mean rule and
      ``--exposure E``), or None.
    strength: the luma strength itself (no exposure: the colour is
      corrected around it), or None.
    rule: the per-scene rule (used when neither ``target`` nor
      ``strength`` is given; default ``SceneRule()``).
    colour_amount: how much of the cast to correct
      (``core.colour.balance_targets``), 0 to 1.
    max_strength: the most a channel gets (default: the rule's, or
      ``MAX_STRENGTH`` with a target).

  Returns:
    ``(strengths [3], info)``; ``info`` has the luma strength and, for the
    rule, ``key`` and ``signal`` (its two bounds), and the cast angle.
  """
  rule = SceneRule() if rule is None else rule
  if max_strength is None:
    max_strength = (rule.max_strength if target is None and strength is None
                    else MAX_STRENGTH)
  if mask is None:
    mask = jnp.ones(image.shape[:-1] + (1,), image.dtype)
  grid = jnp.asarray(plan_strengths_grid(max_strength), image.dtype)
  dark, key = _weights(image, mask, dark_share=rule.dark_share,
                       key_share=rule.key_share)
  sigma = denoise.noise_sigma(image, noise[0], noise[1])
  kw = dict(iterations=iterations, shoulder=shoulder, sigma=sigma,
            mask=mask, dark=dark, key=key)
  means, key_luma, dark_noise = curve_statistics(image, maps, grid, **kw)
  info = {}
  if strength is not None:
    s = jnp.asarray(strength, image.dtype)
  elif target is not None:
    s = _invert(grid, jnp.mean(means, -1), jnp.asarray(target,
                                                       image.dtype))[0]
  else:
    one = jnp.argmin(jnp.abs(grid - 1.0))
    s_key = _invert(grid, key_luma, rule.key_target)[0]
    bound = jnp.maximum(rule.noise_growth * dark_noise[one],
                        rule.noise_floor)
    s_signal = _invert(grid, dark_noise, bound)[0]
    s_signal = jnp.where(jnp.sum(dark) > 0, s_signal, grid[-1])
    s = jnp.maximum(jnp.minimum(s_key, s_signal), rule.min_strength)
    info.update(key=s_key, signal=s_signal)
  info["strength"] = s
  # the channel means at s (linear between grid points), their targets
  at_s = jax.vmap(lambda v: jnp.interp(s, grid, v), in_axes=1)(means)
  info["cast_angle"] = colour.cast_angle(at_s)
  goal = colour.balance_targets(at_s, amount=colour_amount)
  s_c = _invert_rows(grid, means, goal)
  # one secant step per channel, on the curve itself
  got, _, _ = curve_statistics(image, maps, s_c[None], **kw)
  i = jnp.clip(jnp.searchsorted(grid, s_c) - 1, 0, grid.shape[0] - 2)
  cols = jnp.arange(3)
  slope = ((means[i + 1, cols] - means[i, cols])
           / jnp.maximum(grid[i + 1] - grid[i], 1e-6))
  step = jnp.where(slope > 1e-6, (goal - got[0]) / jnp.maximum(slope, 1e-6),
                   0)
  s_c = jnp.clip(s_c + step, grid[i], grid[i + 1])
  if strength is not None:  # no colour correction: the strength as given
    s_c = jnp.where(jnp.asarray(colour_amount) > 0, s_c, s)
  return s_c, info
