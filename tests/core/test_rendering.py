import jax.numpy as jnp
import numpy as np
import pytest

from zerodce_jax.core import curves, denoise, guided, rendering

SH = (0.6, 0.97)


def _case(seed=0, h=32, w=48, maps=24):
  rng = np.random.default_rng(seed)
  x = rng.uniform(0.02, 0.3, (3, h, w)).astype(np.float32)
  a = rng.uniform(0.1, 0.7, (maps, h, w)).astype(np.float32)
  return jnp.asarray(x), jnp.asarray(a)


def test_params_pack_in_order():
  p = rendering.pack_params([1.0, 1.5, 2.0], 0.5, (1, 2, 3, 4))
  np.testing.assert_array_equal(p, [1, 1.5, 2, 0.5, 1, 2, 3, 4])
  np.testing.assert_array_equal(rendering.pack_params(1.2, 0, None)[:4],
                                np.float32([1.2, 1.2, 1.2, 0]))


def test_planes_and_channels_last_curves_agree():
  x, a = _case()
  s = jnp.asarray([1.0, 1.4, 2.0])
  y1, g1 = curves.apply_at_strength(x, a, s[:, None, None], iterations=8,
                                    shoulder=SH, axis=-3)
  y2, g2 = curves.apply_at_strength(jnp.moveaxis(x, 0, -1),
                                    jnp.moveaxis(a, 0, -1), s, iterations=8,
                                    shoulder=SH)
  np.testing.assert_allclose(y1, jnp.moveaxis(y2, -1, 0), atol=1e-6)
  np.testing.assert_allclose(g1, jnp.moveaxis(g2, -1, 0), rtol=1e-5)


def test_render_without_denoising_is_the_curves():
  x, a = _case(1)
  p = jnp.asarray(rendering.pack_params([1.2, 1.0, 0.8], 0.0, None))
  got = rendering.render(x, a, p, iterations=8, shoulder=SH,
                         denoised=False)
  want, _ = curves.apply_at_strength(x, a, p[:3, None, None], iterations=8,
                                     shoulder=SH, axis=-3)
  np.testing.assert_array_equal(got, want)
  # denoised with amount 0: unchanged too
  zero = rendering.render(x, a, p, iterations=8, shoulder=SH)
  np.testing.assert_allclose(zero, want, atol=1e-6)


def test_noise_variances_are_g2_sigma2_less_what_is_invisible():
  x, a = _case(2, maps=3)
  p = jnp.asarray(rendering.pack_params(1.0, 1.0, (2e-3, 1e-4, 4e-3, 2e-4)))
  _, g = curves.apply_at_strength(x, a, 1.0, iterations=8, axis=-3)
  var, var_low = rendering.noise_variances(x, g, p, axis=-3)
  sig = g * denoise.noise_sigma(x, 2e-3, 1e-4)
  sig_low = g * denoise.noise_sigma(x, 4e-3, 2e-4) / denoise.SCALE
  np.testing.assert_allclose(var, denoise.variance(sig, axis=-3), rtol=1e-4,
                             atol=1e-9)
  np.testing.assert_allclose(var_low, denoise.variance(sig_low, axis=-3),
                             rtol=1e-4, atol=1e-9)


def test_maps_from_low_linear_and_guided():
  x, _ = _case(3)
  low = jnp.asarray(np.random.default_rng(4).uniform(
      -0.5, 0.8, (24, 16, 24)), jnp.float32)
  mask = jnp.ones((32, 48))
  np.testing.assert_array_equal(
      rendering.maps_from_low(x, low, factor=2, mask=mask),
      guided.up_linear(low, 2))
  g = rendering.maps_from_low(x, low, factor=2, mask=mask, guided_maps=True)
  assert g.shape == (24, 32, 48)
  assert float(jnp.max(jnp.abs(g))) <= 1.0
  assert rendering.map_reach(2) < rendering.map_reach(2, guided_maps=True)


def test_render_denoises_flat_noise():
  rng = np.random.default_rng(5)
  clean = np.full((3, 64, 64), 0.05, np.float32)
  noisy = np.clip(clean + rng.normal(0, 0.004, clean.shape), 0, 1)
  a = jnp.full((24, 64, 64), 0.6)
  p = jnp.asarray(rendering.pack_params(1.0, 1.0, (0.0, 0.004 ** 2, 0.0,
                                                   (0.004 ** 2) / 2)))
  y = np.asarray(rendering.render(jnp.asarray(noisy), a, p, iterations=8,
                                  shoulder=SH, denoised=False))
  z = np.asarray(rendering.render(jnp.asarray(noisy), a, p, iterations=8,
                                  shoulder=SH))
  assert z.mean() == pytest.approx(y.mean(), rel=0.02)
  assert z[:, 8:-8, 8:-8].std() < y[:, 8:-8, 8:-8].std() / 2
