import jax.numpy as jnp
import numpy as np
import pytest

from zerodce_jax.core import colour, curves, exposure


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


def _scene(seed=0, shape=(48, 64, 3), lo=0.02, hi=0.2, cast=(1.0, 1.0, 1.0)):
  rng = np.random.default_rng(seed)
  x = rng.uniform(lo, hi, shape[:2] + (1,)) * np.asarray(cast)
  return jnp.asarray(np.clip(x, 0, 1), jnp.float32)


def _maps(shape=(48, 64, 24), value=0.5):
  return jnp.full(shape, value, jnp.float32)


def _stats_at(x, a, s, shoulder=(0.6, 0.97)):
  y, _ = curves.apply_at_strength(x, a, jnp.asarray(s), iterations=8,
                                  shoulder=shoulder)
  return np.asarray(y)


@pytest.mark.parametrize("target", [0.3, 0.45])
def test_plan_reaches_a_target_on_every_channel(target):
  x, a = _scene(1), _maps()
  s, info = exposure.plan_strengths(x, a, iterations=8, shoulder=(0.6, 0.97),
                                    noise=(0.0, 0.0), target=target)
  y = _stats_at(x, a, s)
  assert abs(float(y.mean()) - target) < 0.01
  np.testing.assert_allclose(s, float(info["strength"]), rtol=0.05)


def test_plan_corrects_a_small_cast_by_the_channel_strengths():
  x, a = _scene(2, cast=(1.0, 0.93, 0.8)), _maps()
  s0, _ = exposure.plan_strengths(x, a, iterations=8, shoulder=(0.6, 0.97),
                                  noise=(0.0, 0.0), target=0.45)
  s1, info = exposure.plan_strengths(x, a, iterations=8,
                                     shoulder=(0.6, 0.97), noise=(0.0, 0.0),
                                     target=0.45, colour_amount=1.0)
  m0 = _stats_at(x, a, s0).reshape(-1, 3).mean(0)
  m1 = _stats_at(x, a, s1).reshape(-1, 3).mean(0)
  assert float(info["cast_angle"]) < 8
  assert float(colour.cast_angle(m1)) < 0.3 * float(colour.cast_angle(m0))
  assert abs(m1.mean() - 0.45) < 0.01
  assert float(s1[2]) > float(s1[0])  # blue lifted more than red


def test_scene_rule_lifts_the_key_and_stops_at_the_signal():
  a = _maps(value=0.25)
  clean = _scene(3, lo=0.01, hi=0.12)
  rule = exposure.SceneRule()
  s, info = exposure.plan_strengths(clean, a, iterations=8,
                                    shoulder=(0.6, 0.97), noise=(0.0, 0.0),
                                    rule=rule)
  y = _stats_at(clean, a, s).mean(-1)
  key = y[np.asarray(clean).mean(-1) >= np.quantile(
      np.asarray(clean).mean(-1), 1 - rule.key_share)]
  assert float(s[0]) < rule.max_strength
  assert abs(float(key.mean()) - rule.key_target) < 0.02
  # the same scene, noisy, with a tighter bound: it stops below the key's
  tight = exposure.SceneRule(noise_growth=1.2)
  noisy, info2 = exposure.plan_strengths(
      clean, a, iterations=8, shoulder=(0.6, 0.97), noise=(0.0, 0.05 ** 2),
      rule=tight)
  assert float(info2["signal"]) < float(info2["key"])
  assert float(noisy[0]) < float(s[0])
  assert float(noisy[0]) >= rule.min_strength - 1e-6
  # a bright scene: never darker than the model's own curves
  bright, _ = exposure.plan_strengths(_scene(4, lo=0.5, hi=0.8), a,
                                      iterations=8, shoulder=(0.6, 0.97),
                                      noise=(0.0, 0.0), rule=rule)
  np.testing.assert_allclose(bright, 1.0, atol=1e-6)


def test_plan_keeps_a_given_strength_when_colour_is_off():
  x, a = _scene(5), _maps()
  s, _ = exposure.plan_strengths(x, a, iterations=8, shoulder=(0.6, 0.97),
                                 noise=(0.0, 0.0), strength=1.7,
                                 max_strength=4.0)
  np.testing.assert_allclose(s, 1.7, rtol=0.01)
