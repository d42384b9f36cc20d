import jax
import jax.numpy as jnp
import numpy as np

from zerodce_jax.core import curves, losses, models, research


def test_term_gradient_norms_match_direct_computation():
  model = models.make_model("3-32-8", bias_init="torch")
  x = jnp.asarray(np.random.default_rng(0).random((2, 16, 16, 3)),
                  jnp.float32) * 0.4
  params = model.init(jax.random.key(0), x)["params"]
  rows = research.term_gradient_norms(model, params, x, exposure_patch=8)
  assert len(rows) == 8
  by = {(r["term"], r["variant"]): r for r in rows}
  y, maps = model.apply({"params": params}, x)
  np.testing.assert_allclose(
      by["exp", "official"]["value"],
      losses.exposure_control_official(y, patch=8).mean(), rtol=1e-6)
  g = jax.grad(lambda a: losses.exposure_control_paper(
      curves.apply_curves(x, a), patch=8).mean())(maps)
  np.testing.assert_allclose(by["exp", "paper"]["grad_maps_norm"],
                             float(jnp.linalg.norm(g)), rtol=1e-5)
  assert all(r["grad_params_norm"] > 0 for r in rows)
