"""The four no-reference losses of Zero-DCE, in ``paper`` and ``official`` forms.

Conventions: images NHWC float in [0, 1] (``enhanced`` = Y, ``original`` = I);
curve maps ``[B, H, W, 3n]`` (sign irrelevant: every smoothness term is even
in A). Every term returns per-example values of shape ``[B]``; callers reduce
(the official script's batch means equal the mean of these values).
``total_loss`` does the weighted sum of batch means.

The ``official`` variants reproduce ``Myloss.py`` of the official code
number for number; the ``paper`` variants are the CVPR 2020 formulas. SPEC
section 4 lists the differences.
"""

from __future__ import annotations

import functools
from typing import Callable, Mapping

import jax
import jax.numpy as jnp

__all__ = [
    "spatial_consistency_official", "spatial_consistency_paper",
    "exposure_control_official", "exposure_control_paper",
    "color_constancy_official", "color_constancy_paper",
    "illumination_smoothness_official", "illumination_smoothness_paper",
    "TERMS", "WEIGHTS", "OFFICIAL_WEIGHTS", "OFFICIAL_PP_WEIGHTS",
    "PAPER_WEIGHTS", "total_loss", "avg_pool",
]

Array = jax.Array


def avg_pool(x: Array, size: int) -> Array:
  """Mean over non-overlapping ``size x size`` patches of ``[B, H, W]``.

  Trailing rows/columns that do not fill a patch are dropped, as
  ``nn.AvgPool2d(size)`` does.
  """
  b, h, w = x.shape
  hp, wp = h // size, w // size
  if hp == 0 or wp == 0:
    raise ValueError(f"image {h}x{w} is smaller than the {size}x{size} patch")
  x = x[:, :hp * size, :wp * size].reshape(b, hp, size, wp, size)
  return x.mean(axis=(2, 4))


def _gray_pool(x: Array, size: int) -> Array:
  return avg_pool(jnp.mean(x, axis=-1), size)


# ----------------------------------------------------------------- spatial --
def _neighbour_diffs_zero_pad(p: Array) -> list[Array]:
  """``centre - neighbour`` for left, right, up, down; zeros beyond borders."""
  q = jnp.pad(p, ((0, 0), (1, 1), (1, 1)))
  c = q[:, 1:-1, 1:-1]
  return [c - q[:, 1:-1, :-2], c - q[:, 1:-1, 2:],
          c - q[:, :-2, 1:-1], c - q[:, 2:, 1:-1]]


@functools.partial(jax.jit, static_argnames=("region",))
def spatial_consistency_official(*, enhanced: Array, original: Array,
                                 region: int = 4) -> Array:
  r"""Official ``L_spa``: signed, zero-padded neighbour differences.

  .. math::
    \frac{1}{K}\sum_i \sum_{j \in \{l,r,u,d\}} (D^I_{ij} - D^Y_{ij})^2,
    \quad D_{ij} = P_i - P_j

  where P is the channel mean average-pooled over ``region`` x ``region``
  patches and neighbours outside the image count as 0 (the official 3x3
  difference kernels with padding 1).

  Args:
    enhanced: ``[B, H, W, C]`` Y.
    original: ``[B, H, W, C]`` I.
    region: pooling size (4).

  Returns:
    ``[B]`` per-image values.
  """
  py, pi = _gray_pool(enhanced, region), _gray_pool(original, region)
  e = sum(jnp.square(di - dy) for di, dy in zip(
      _neighbour_diffs_zero_pad(pi), _neighbour_diffs_zero_pad(py)))
  return e.mean(axis=(1, 2))


@functools.partial(jax.jit, static_argnames=("region",))
def spatial_consistency_paper(*, enhanced: Array, original: Array,
                              region: int = 4) -> Array:
  r"""Paper ``L_spa`` (Eq. 3): absolute differences, in-image neighbours only.

  .. math::
    \frac{1}{K}\sum_{i=1}^{K}\sum_{j\in\Omega(i)}
    (|Y_i - Y_j| - |I_i - I_j|)^2

  Regions are ``region`` x ``region`` patches of the channel mean; Omega(i)
  are the (up to 4) neighbours inside the image.

  Returns:
    ``[B]`` per-image values.
  """
  py, pi = _gray_pool(enhanced, region), _gray_pool(original, region)
  k = py.shape[1] * py.shape[2]
  total = 0.0
  for axis in (1, 2):
    dy = jnp.abs(jnp.diff(py, axis=axis))
    di = jnp.abs(jnp.diff(pi, axis=axis))
    # each adjacent pair is a neighbour of both of its regions: count twice
    total = total + 2.0 * jnp.square(dy - di).sum(axis=(1, 2))
  return total / k


# ---------------------------------------------------------------- exposure --
@functools.partial(jax.jit, static_argnames=("patch",))
def exposure_control_official(enhanced: Array, *, level: float = 0.6,
                              patch: int = 16) -> Array:
  r"""Official ``L_exp``: squared distance of patch means to ``level``.

  .. math:: \frac{1}{M}\sum_k (Y_k - E)^2

  Returns:
    ``[B]`` per-image values.
  """
  return jnp.square(_gray_pool(enhanced, patch) - level).mean(axis=(1, 2))


@functools.partial(jax.jit, static_argnames=("patch",))
def exposure_control_paper(enhanced: Array, *, level: float = 0.6,
                           patch: int = 16) -> Array:
  r"""Paper ``L_exp`` (Eq. 4): absolute distance of patch means to ``level``.

  .. math:: \frac{1}{M}\sum_k |Y_k - E|

  Returns:
    ``[B]`` per-image values.
  """
  return jnp.abs(_gray_pool(enhanced, patch) - level).mean(axis=(1, 2))


# ------------------------------------------------------------------ colour --
def _pair_sq_diffs(enhanced: Array) -> tuple[Array, Array, Array]:
  m = enhanced.mean(axis=(1, 2))  # [B, 3]
  r, g, b = m[:, 0], m[:, 1], m[:, 2]
  return jnp.square(r - g), jnp.square(r - b), jnp.square(g - b)


@jax.jit
def color_constancy_official(enhanced: Array, *, eps: float = 0.0) -> Array:
  r"""Official ``L_color``: root of the summed squares of the pair terms.

  .. math:: \sqrt{D_{RG}^2 + D_{RB}^2 + D_{GB}^2 + \epsilon},
    \quad D_{pq} = (J^p - J^q)^2

  With ``eps = 0`` (the official value) the gradient is NaN when the three
  channel means coincide (an infinite derivative of sqrt at 0; official
  Zero-DCE issue #35): training configs set a small ``eps``.

  Returns:
    ``[B]`` per-image values.
  """
  drg, drb, dgb = _pair_sq_diffs(enhanced)
  return jnp.sqrt(jnp.square(drg) + jnp.square(drb) + jnp.square(dgb) + eps)


@jax.jit
def color_constancy_paper(enhanced: Array) -> Array:
  r"""Paper ``L_col`` (Eq. 5): sum of squared channel-mean differences.

  .. math:: \sum_{(p,q)\in\{(R,G),(R,B),(G,B)\}} (J^p - J^q)^2

  Returns:
    ``[B]`` per-image values.
  """
  drg, drb, dgb = _pair_sq_diffs(enhanced)
  return drg + drb + dgb


# -------------------------------------------------------------- smoothness --
@jax.jit
def illumination_smoothness_official(maps: Array) -> Array:
  r"""Official ``L_TV``: normalised squared forward differences.

  .. math::
    2\left(\frac{\sum (A_{y+1,x} - A_{y,x})^2}{(H-1)W}
         + \frac{\sum (A_{y,x+1} - A_{y,x})^2}{H(W-1)}\right)

  sums over all channels, counts without them, as the official code.

  Args:
    maps: ``[B, H, W, 3n]`` curve maps.

  Returns:
    ``[B]`` per-image values (their mean is the official batch value).
  """
  _, h, w, _ = maps.shape
  h_tv = jnp.square(jnp.diff(maps, axis=1)).sum(axis=(1, 2, 3))
  w_tv = jnp.square(jnp.diff(maps, axis=2)).sum(axis=(1, 2, 3))
  return 2.0 * (h_tv / ((h - 1) * w) + w_tv / (h * (w - 1)))


@jax.jit
def illumination_smoothness_paper(maps: Array) -> Array:
  r"""Paper ``L_tvA`` (Eq. 6).

  .. math::
    \frac{1}{N}\sum_{n=1}^{N}\sum_{c}
    \overline{(|\nabla_x A_n^c| + |\nabla_y A_n^c|)^2}

  with forward differences on the ``(H-1) x (W-1)`` pixels that have both,
  the bar a mean over those pixels, and N = ``maps.shape[-1] // 3``.

  Returns:
    ``[B]`` per-image values.
  """
  gx = jnp.abs(maps[:, :-1, 1:, :] - maps[:, :-1, :-1, :])
  gy = jnp.abs(maps[:, 1:, :-1, :] - maps[:, :-1, :-1, :])
  n = maps.shape[-1] // 3
  return jnp.square(gx + gy).mean(axis=(1, 2)).sum(axis=-1) / n


# ------------------------------------------------------------------- total --
TERMS: dict[str, dict[str, Callable[..., Array]]] = {
    "spa": {"official": spatial_consistency_official,
            "paper": spatial_consistency_paper},
    "exp": {"official": exposure_control_official,
            "paper": exposure_control_paper},
    "col": {"official": color_constancy_official,
            "paper": color_constancy_paper},
    "tv": {"official": illumination_smoothness_official,
           "paper": illumination_smoothness_paper},
}

OFFICIAL_WEIGHTS = {"spa": 1.0, "exp": 10.0, "col": 5.0, "tv": 200.0}
OFFICIAL_PP_WEIGHTS = {"spa": 1.0, "exp": 10.0, "col": 5.0, "tv": 1600.0}
PAPER_WEIGHTS = {"spa": 1.0, "exp": 1.0, "col": 0.5, "tv": 20.0}
WEIGHTS = {"official": OFFICIAL_WEIGHTS, "official_pp": OFFICIAL_PP_WEIGHTS,
           "paper": PAPER_WEIGHTS}


def total_loss(
    *,
    enhanced: Array,
    original: Array,
    maps: Array,
    weights: Mapping[str, float] | str = "official",
    variant: Mapping[str, str] | str = "official",
    exposure_level: float = 0.6,
    exposure_patch: int = 16,
    spatial_region: int = 4,
    color_eps: float = 0.0,
    extra_terms: Mapping[str, Callable[..., Array]] | None = None,
) -> tuple[Array, dict[str, Array]]:
  """Weighted sum of the batch means of the loss terms.

  Args:
    enhanced: ``[B, H, W, 3]`` enhanced images.
    original: ``[B, H, W, 3]`` inputs.
    maps: ``[B, H, W, 3n]`` curve maps.
    weights: term name -> weight, or a preset name from ``WEIGHTS``
      (``official``: spa 1, exp 10, col 5, tv 200; ``official_pp``: tv 1600;
      ``paper``: spa 1, exp 1, col 0.5, tv 20). A term with weight 0 or absent
      is not computed (loss ablations).
    variant: ``"official"`` or ``"paper"`` for every term, or a mapping term
      -> variant.
    exposure_level: E of the exposure term (0.6).
    exposure_patch: patch size of the exposure term (16).
    spatial_region: region size of the spatial term (4).
    color_eps: epsilon inside the official colour term's sqrt (0 = official
      value; > 0 keeps its gradient finite).
    extra_terms: user terms, name -> ``fn(*, enhanced, original, maps)``
      returning ``[B]``; weighted by ``weights[name]``.

  Returns:
    ``(loss, terms)``: the scalar loss and a dict of each term's unweighted
    batch mean.
  """
  if isinstance(weights, str):
    if weights not in WEIGHTS:
      raise ValueError(f"unknown weights preset {weights!r}; known: "
                       f"{', '.join(WEIGHTS)}")
    weights = WEIGHTS[weights]
  extra_terms = dict(extra_terms or {})
  unknown = set(weights) - set(TERMS) - set(extra_terms)
  if unknown:
    raise ValueError(f"weights name unknown terms {sorted(unknown)}")

  def pick(name):
    v = variant if isinstance(variant, str) else variant.get(name, "official")
    if v not in TERMS[name]:
      raise ValueError(f"unknown variant {v!r} for term {name!r}")
    return TERMS[name][v]

  calls: dict[str, Callable[[], Array]] = {
      "spa": lambda: pick("spa")(enhanced=enhanced, original=original,
                                 region=spatial_region),
      "exp": lambda: pick("exp")(enhanced, level=exposure_level,
                                 patch=exposure_patch),
      "col": lambda: (pick("col")(enhanced, eps=color_eps)
                      if pick("col") is color_constancy_official
                      else pick("col")(enhanced)),
      "tv": lambda: pick("tv")(maps),
  }
  for name, fn in extra_terms.items():
    calls[name] = functools.partial(fn, enhanced=enhanced, original=original,
                                    maps=maps)
  terms: dict[str, Array] = {}
  loss = jnp.zeros((), jnp.float32)
  for name, w in weights.items():
    if w == 0:
      continue
    value = jnp.mean(calls[name]().astype(jnp.float32))
    terms[name] = value
    loss = loss + w * value
  return loss, terms
