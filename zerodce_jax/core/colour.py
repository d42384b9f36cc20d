"""Colour cast of an enhanced image and the partial correction of it.

Zero-DCE's curves act on each channel alone, so an output keeps whatever
cast its input had: a dark capture's white balance (the camera's guess in
little light) and its black level, amplified. The correction here is a
zero-reference grey-world estimate, made partial, applied by the curves
themselves (one strength per channel, ``core.exposure``):

* the cast is the direction of the output's mean colour ``M = (M_R, M_G,
  M_B)`` (mean over the pixels, in the output's own encoding) away from
  grey, measured as an angle

  .. math::

     \\theta = \\arccos \\frac{M \\cdot (1, 1, 1)}{\\sqrt 3\\, \\lVert M
     \\rVert};

* the corrected means keep the brightness ``\\bar M = (M_R + M_G + M_B)/3``
  and move each channel's balance ``b_c = M_c / \\bar M`` part of the way to
  1, ``T_c \\propto \\bar M\\, b_c^{1 - \\alpha}``, renormalised to mean
  ``\\bar M``;
* ``alpha`` is the amount asked for, faded with the cast's size: a small
  cast (below ``full_below`` degrees) is the camera's and is taken out by
  ``amount``; a strong one (``keep_above`` degrees and more) is most likely
  the scene's light, a sodium street lamp or a candle, and is kept but for
  ``amount * keep_share``, linearly in between.

Arrays: channel means ``[..., 3]``. Pure ``jnp``, jit-safe.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["cast_angle", "correction_amount", "balance_targets",
           "FULL_BELOW", "KEEP_ABOVE", "KEEP_SHARE"]

# The fade of the correction with the cast's size (docs: "Better than the
# paper", where they were chosen): full up to FULL_BELOW degrees,
# KEEP_SHARE of it from KEEP_ABOVE degrees on.
FULL_BELOW = 6.0
KEEP_ABOVE = 15.0
KEEP_SHARE = 0.25


def cast_angle(means: jax.Array) -> jax.Array:
  """Degrees between the mean colour ``[..., 3]`` and grey (0: neutral)."""
  m = jnp.maximum(jnp.asarray(means, jnp.float32), 0)
  cos = jnp.sum(m, -1) / (jnp.sqrt(3.0) * jnp.linalg.norm(m, axis=-1)
                          + 1e-12)
  return jnp.degrees(jnp.arccos(jnp.clip(cos, -1.0, 1.0)))


def correction_amount(angle: jax.Array, *, amount: jax.Array | float,
                      full_below: float = FULL_BELOW,
                      keep_above: float = KEEP_ABOVE,
                      keep_share: float = KEEP_SHARE) -> jax.Array:
  """``alpha``: ``amount`` for casts up to ``full_below`` degrees,
  ``amount * keep_share`` from ``keep_above`` on, linear in between."""
  t = jnp.clip((angle - full_below) / (keep_above - full_below), 0, 1)
  return jnp.asarray(amount, jnp.float32) * (1 - (1 - keep_share) * t)


def balance_targets(means: jax.Array, *, amount: jax.Array | float,
                    full_below: float = FULL_BELOW,
                    keep_above: float = KEEP_ABOVE,
                    keep_share: float = KEEP_SHARE) -> jax.Array:
  """The channel means to aim for: ``means`` ``[..., 3]`` with their cast
  reduced (module doc), the same mean brightness.

  ``amount = 0`` returns ``means``; ``amount = 1`` with a cast below
  ``full_below`` degrees returns grey at the same brightness.
  """
  m = jnp.maximum(jnp.asarray(means, jnp.float32), 1e-6)
  mean = jnp.mean(m, -1, keepdims=True)
  alpha = correction_amount(cast_angle(m), amount=amount,
                            full_below=full_below, keep_above=keep_above,
                            keep_share=keep_share)[..., None]
  t = mean * (m / mean) ** (1 - alpha)
  return t * mean / jnp.mean(t, -1, keepdims=True)
