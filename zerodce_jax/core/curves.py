"""Light-enhancement (LE) curves: the maths of Zero-DCE, nothing else.

Conventions for this module:
  * images are float arrays in [0, 1], channels last (``[..., H, W, 3]``);
  * curve maps use the *paper's* sign: ``LE(I; a) = I + a * I * (1 - I)`` with
    ``a`` in [-1, 1] (a > 0 brightens). The official PyTorch code computes
    ``x + r * (x**2 - x)``, i.e. ``a = -r``; ``zerodce_jax.convert`` flips the
    sign when importing official weights.
  * a stack of curve maps has ``3 * n`` channels, iteration-major
    (``[a_1^R, a_1^G, a_1^B, a_2^R, ...]``), as the official network emits them.

Every function is pure and safe under ``jit``, ``vmap`` and ``grad``; float32
and bfloat16 inputs are supported (the computation stays in the input dtype).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

__all__ = ["le_curve", "apply_curves", "split_maps", "scale_maps",
           "shoulder_weight", "apply_at_strength", "noise_gain"]


def le_curve(image: jax.Array, a: jax.Array) -> jax.Array:
  """One quadratic LE-curve step, ``I + a * I * (1 - I)``.

  Args:
    image: float array in [0, 1], any shape.
    a: curve parameter(s) in [-1, 1], broadcastable to ``image``.

  Returns:
    Array of ``image``'s shape, in [0, 1], monotonic in ``image`` for every
    ``a`` in [-1, 1]. ``a = -1`` gives ``I**2``, ``a = 0`` the identity and
    ``a = 1`` gives ``1 - (1 - I)**2``.

  References:
    Guo et al., "Zero-Reference Deep Curve Estimation for Low-Light Image
    Enhancement", CVPR 2020, Eq. (1).
  """
  return image + a * image * (1 - image)


def split_maps(maps: jax.Array, *, channels: int = 3,
               axis: int = -1) -> list[jax.Array]:
  """Splits a ``[..., 3n]`` stack of curve maps into ``n`` maps of
  ``[..., 3]`` (along ``axis``: ``-3`` for planes ``[..., 3n, H, W]``)."""
  if maps.shape[axis] % channels:
    raise ValueError(
        f"curve maps have {maps.shape[axis]} channels, not a multiple of "
        f"{channels}")
  n = maps.shape[axis] // channels
  return [jax.lax.slice_in_dim(maps, i * channels, (i + 1) * channels,
                               axis=axis) for i in range(n)]


def apply_curves(
    image: jax.Array,
    maps: jax.Array,
    *,
    iterations: int | None = None,
    return_intermediate: bool | Sequence[int] = False,
) -> jax.Array | tuple[jax.Array, dict[int, jax.Array]]:
  """Applies the n-step pixel-wise LE-curve, ``LE_n = LE(LE_{n-1}; A_n)``.

  Args:
    image: ``[..., H, W, C]`` float image in [0, 1].
    maps: curve maps in the paper's sign, ``[..., H, W, C * n]`` (Zero-DCE:
      one map per iteration) or ``[..., H, W, C]`` (Zero-DCE++: one map reused
      for every iteration, then ``iterations`` says how many).
    iterations: number of iterations. Default: ``maps.shape[-1] // C`` (one
      per map). When ``maps`` holds a single map, any count reuses it.
    return_intermediate: ``True`` to also return every iterate, or a sequence
      of 1-based iteration numbers to return (the official Zero-DCE returns
      the 4th: ``return_intermediate=(4,)``).

  Returns:
    The enhanced image, same shape and dtype as ``image``, in [0, 1]; with
    ``return_intermediate``, a tuple ``(enhanced, {n: LE_n})``.
  """
  c = image.shape[-1]
  stack = split_maps(maps.astype(image.dtype), channels=c)
  n_maps = len(stack)
  if iterations is None:
    iterations = n_maps
  if n_maps not in (1, iterations):
    raise ValueError(
        f"{n_maps} curve maps cannot drive {iterations} iterations: give one "
        "map per iteration, or a single shared map")
  if return_intermediate is True:
    keep = set(range(1, iterations + 1))
  elif return_intermediate is False:
    keep = set()
  else:
    keep = set(int(i) for i in return_intermediate)
    bad = [i for i in keep if not 1 <= i <= iterations]
    if bad:
      raise ValueError(f"intermediate iterations {bad} not in 1..{iterations}")
  x = image
  inter = {}
  for n in range(1, iterations + 1):
    x = le_curve(x, stack[0] if n_maps == 1 else stack[n - 1])
    if n in keep:
      inter[n] = x
  if return_intermediate is False:
    return x
  return x, inter


def scale_maps(maps: jax.Array, strength: jax.Array | float) -> jax.Array:
  """Curve maps at another strength: ``a' = clip(s a, -1, 1)``.

  ``s = 0`` gives the identity curve (the input), ``s = 1`` the model's own
  maps. Each LE step is monotone in the pixel for every ``a'`` in [-1, 1],
  so the clipped curve stays monotone.

  Args:
    maps: ``[..., H, W, 3n]`` curve maps (paper sign).
    strength: ``s >= 0``, a scalar or broadcastable to ``maps`` (one per
      image: ``[B, 1, 1, 1]``).
  """
  return jnp.clip(jnp.asarray(strength, maps.dtype) * maps, -1, 1)


def shoulder_weight(v: jax.Array, *, knee: float, ceiling: float
                    ) -> tuple[jax.Array, jax.Array]:
  """Highlight shoulder: ``w(v)`` is 1 up to ``knee``, falls linearly to 0 at
  ``ceiling`` and stays 0 above; returns ``(w, dw/dv)``.

  A brightening step weighted by it, ``v + a w(v) v (1 - v)`` with ``0 < a
  <= 1``, keeps every iterate below ``ceiling`` below it (no pixel is
  pushed into clipping that was not there) and stays monotone: its slope
  ``1 + a (w (1 - 2v) + w' v (1 - v))`` is at least 0.125 for ``knee = 0.6,
  ceiling = 0.97``.
  """
  span = ceiling - knee
  w = jnp.clip((ceiling - v) / span, 0, 1)
  dw = jnp.where((v > knee) & (v < ceiling), -1 / span, 0).astype(v.dtype)
  return w, dw


def apply_at_strength(image: jax.Array, maps: jax.Array, strength, *,
                      iterations: int | None = None,
                      shoulder: tuple[float, float] | None = None,
                      axis: int = -1) -> tuple[jax.Array, jax.Array]:
  """The curves at ``strength`` (``scale_maps``), optionally with a
  highlight shoulder, and their exact noise gain.

  With ``shoulder = (knee, ceiling)`` every brightening step (``a' > 0``) is
  weighted by ``shoulder_weight`` of its own input iterate,

  .. math::

     LE_n = LE_{n-1} + a'_n\\, w(LE_{n-1})\\, LE_{n-1} (1 - LE_{n-1}),

  darkening steps are kept as they are. The gain is ``dLE_N / dI`` with the
  maps held fixed, the product of the steps' slopes ``1 + a' (w (1 - 2v) +
  w' v (1 - v))`` (``noise_gain`` without a shoulder).

  ``axis`` is the channel axis of ``image`` and ``maps`` (``-3`` for
  planes ``[..., 3, H, W]``; ``strength`` must then broadcast to them).

  Returns:
    ``(enhanced, gain)``, both of ``image``'s shape.
  """
  c = image.shape[axis]
  stack = split_maps(maps.astype(image.dtype), channels=c, axis=axis)
  iterations = len(stack) if iterations is None else iterations
  s = jnp.asarray(strength, image.dtype)
  x, g = image, jnp.ones_like(image)
  for n in range(iterations):
    a = scale_maps(stack[0] if len(stack) == 1 else stack[n], s)
    if shoulder is None:
      g = g * (1 + a * (1 - 2 * x))
      x = le_curve(x, a)  # the same rounding as apply_curves
    else:
      q = x * (1 - x)
      w, dw = shoulder_weight(x, knee=shoulder[0], ceiling=shoulder[1])
      brighten = a > 0
      w = jnp.where(brighten, w, 1)
      dw = jnp.where(brighten, dw, 0)
      g = g * (1 + a * (w * (1 - 2 * x) + dw * q))
      x = x + a * w * q
  return x, g


def noise_gain(image: jax.Array, maps: jax.Array, *,
               iterations: int | None = None) -> jax.Array:
  """How much the curves multiply small input changes: ``dLE_n / dI``.

  With the maps held fixed, each step ``LE_n = LE_{n-1} + A_n LE_{n-1} (1 -
  LE_{n-1})`` has the derivative ``1 + A_n (1 - 2 LE_{n-1})``, so

  .. math::

     g = \\frac{\\partial LE_N}{\\partial I} = \\prod_{n=1}^{N}
         \\bigl(1 + A_n\\,(1 - 2\\,LE_{n-1})\\bigr), \\qquad LE_0 = I,

  per pixel and channel (paper sign: ``A_n > 0`` brightens; the official
  code's ``r = -A``). Input noise of standard deviation ``sigma`` comes out
  with about ``g * sigma``: where denoising has work to do. Exact: the same
  iterates as ``apply_curves`` (equal to ``jax.jvp`` of it along a unit
  tangent).

  Args:
    image: ``[..., H, W, C]`` in [0, 1].
    maps: curve maps as for ``apply_curves``.
    iterations: as for ``apply_curves``.

  Returns:
    ``g`` of ``image``'s shape, ``>= 0``.
  """
  c = image.shape[-1]
  stack = split_maps(maps.astype(image.dtype), channels=c)
  iterations = len(stack) if iterations is None else iterations
  x, g = image, jnp.ones_like(image)
  for n in range(iterations):
    a = stack[0] if len(stack) == 1 else stack[n]
    g = g * (1 + a * (1 - 2 * x))
    x = le_curve(x, a)
  return g
