"""Tools for loss research: per-term gradients, term by term.

``term_gradient_norms`` differentiates each loss term separately, with
respect to the curve maps A and to the network params, so variants (e.g. the
paper's absolute exposure error vs the official squared one) can be compared
on the same batch.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import optax

from zerodce_jax.core import curves, losses

__all__ = ["term_gradient_norms"]


def term_gradient_norms(model, params: Any, batch: jax.Array, *,
                        variants: Sequence[str] = ("official", "paper"),
                        terms: Sequence[str] = ("spa", "exp", "col", "tv"),
                        exposure_patch: int = 16, color_eps: float = 1e-8
                        ) -> list[dict[str, Any]]:
  """Value and gradient norms of each (term, variant) on one batch.

  Args:
    model: a ``DCENet`` (scale factor 1).
    params: its params.
    batch: ``[B, H, W, 3]`` images in [0, 1].
    variants, terms: which to evaluate.
    exposure_patch: patch size of the exposure term.
    color_eps: eps of the official colour term (keeps its gradient finite).

  Returns:
    One record per (term, variant): ``term``, ``variant``, ``value`` (batch
    mean), ``grad_maps_norm`` (L2 norm of d value / d A, A being the curve
    maps, through the curve and the enhanced image) and ``grad_params_norm``.
  """
  def term_value(maps, name, variant):
    enhanced = curves.apply_curves(batch, maps, iterations=model.iterations)
    fn = losses.TERMS[name][variant]
    if name == "spa":
      v = fn(enhanced=enhanced, original=batch)
    elif name == "exp":
      v = fn(enhanced, patch=exposure_patch)
    elif name == "col":
      v = fn(enhanced, eps=color_eps) if variant == "official" else fn(
          enhanced)
    else:
      v = fn(maps)
    return jnp.mean(v)

  def maps_of(p):
    return model.apply({"params": p}, batch)[1]

  maps = maps_of(params)
  out = []
  for name in terms:
    for variant in variants:
      value, g_maps = jax.value_and_grad(term_value)(maps, name, variant)
      g_params = jax.grad(
          lambda p, n=name, v=variant: term_value(maps_of(p), n, v))(params)
      out.append({"term": name, "variant": variant, "value": float(value),
                  "grad_maps_norm": float(optax.tree.norm(g_maps)),
                  "grad_params_norm": float(optax.tree.norm(g_params))})
  return out
