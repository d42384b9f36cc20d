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

__all__ = ["le_curve", "apply_curves", "split_maps"]


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


def split_maps(maps: jax.Array, *, channels: int = 3) -> list[jax.Array]:
  """Splits a ``[..., 3n]`` stack of curve maps into ``n`` maps of ``[..., 3]``."""
  if maps.shape[-1] % channels:
    raise ValueError(
        f"curve maps have {maps.shape[-1]} channels, not a multiple of "
        f"{channels}")
  n = maps.shape[-1] // channels
  return [maps[..., i * channels:(i + 1) * channels] for i in range(n)]


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
