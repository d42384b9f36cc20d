import jax.numpy as jnp
import numpy as np
import pytest

from zerodce_jax.core import curves, exposure


def _image(seed, lo=0.02, hi=0.3, shape=(40, 50, 3)):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.uniform(lo, hi, shape), jnp.float32)


def _mean_at(x, a, s, shoulder=None):
  y, _ = curves.apply_at_strength(x, a, s, iterations=8, shoulder=shoulder)
  return float(jnp.mean(y))


@pytest.mark.parametrize("target", [0.3, 0.45, 0.6])
@pytest.mark.parametrize("shoulder", [None, (0.6, 0.97)])
def test_strength_for_lands_on_the_target(target, shoulder):
  x = _image(0)
  a = jnp.asarray(np.random.default_rng(1).uniform(0.05, 0.6, (40, 50, 24)),
                  jnp.float32)
  s = float(exposure.strength_for(x, a, target, iterations=8,
                                  shoulder=shoulder))
  assert 0 < s < exposure.MAX_STRENGTH
  assert abs(_mean_at(x, a, s, shoulder) - target) < 2e-3


def test_brightness_grid_is_the_mean_at_each_strength():
  x, a = _image(2), jnp.full((40, 50, 3), 0.4, jnp.float32)
  grid = exposure.brightness_grid(x, a, jnp.asarray([0.0, 1.0, 2.5]),
                                  iterations=8)
  np.testing.assert_allclose(grid, [float(jnp.mean(x)), _mean_at(x, a, 1.0),
                                    _mean_at(x, a, 2.5)], rtol=1e-5)
  mask = jnp.zeros((40, 50, 1)).at[:20].set(1)
  half = exposure.brightness_grid(x, a, jnp.asarray([1.0]), iterations=8,
                                  mask=mask)
  y, _ = curves.apply_at_strength(x, a, 1.0, iterations=8)
  np.testing.assert_allclose(half[0], float(jnp.mean(y[:20])), rtol=1e-5)


def test_targets_out_of_reach_give_the_ends():
  x = _image(3, lo=0.5, hi=0.6)
  a = jnp.full((40, 50, 24), 0.2, jnp.float32)
  # darker than the input: strength 0 (the input itself)
  assert float(exposure.strength_for(x, a, 0.1, iterations=8)) == 0.0
  # brighter than any strength reaches with tiny maps: the largest strength
  tiny = jnp.full((40, 50, 24), 1e-4, jnp.float32)
  s = float(exposure.strength_for(_image(4, 0.0, 0.01), tiny, 0.9,
                                  iterations=8))
  assert s == exposure.MAX_STRENGTH
