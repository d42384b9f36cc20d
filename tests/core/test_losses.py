import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zerodce_jax.core import losses


def regions(values, region=4, channel_spread=0.1):
  """An image whose 4x4 regions have the given channel means [B, h, w]."""
  v = np.asarray(values, np.float32)
  img = np.repeat(np.repeat(v, region, axis=1), region, axis=2)
  spread = np.array([-channel_spread, 0, channel_spread], np.float32)
  return jnp.asarray(img[..., None] + spread)


# ---- spatial consistency: worked by hand in the comments -------------------
def test_spatial_official_hand_value():
  # pooled I = [0.1, 0.3], Y = [0.2, 0.6] (one row of two regions).
  # region 0: D_I (l,r,u,d) = 0.1,-0.2,0.1,0.1; D_Y = 0.2,-0.4,0.2,0.2
  #           -> 0.01+0.04+0.01+0.01 = 0.07
  # region 1: D_I = 0.2,0.3,0.3,0.3; D_Y = 0.4,0.6,0.6,0.6 -> 0.04+3*0.09=0.31
  # mean = 0.19
  i, y = regions([[[0.1, 0.3]]]), regions([[[0.2, 0.6]]])
  v = losses.spatial_consistency_official(enhanced=y, original=i)
  np.testing.assert_allclose(v, [0.19], rtol=1e-5)


def test_spatial_paper_hand_value():
  # one neighbour each: (|0.2-0.6| - |0.1-0.3|)^2 = 0.04, twice, / K=2 = 0.04
  i, y = regions([[[0.1, 0.3]]]), regions([[[0.2, 0.6]]])
  v = losses.spatial_consistency_paper(enhanced=y, original=i)
  np.testing.assert_allclose(v, [0.04], rtol=1e-5)


def test_spatial_is_zero_for_identity_and_per_example():
  i = regions([[[0.1, 0.3], [0.5, 0.2]], [[0.9, 0.1], [0.4, 0.4]]])
  for fn in (losses.spatial_consistency_official,
             losses.spatial_consistency_paper):
    v = fn(enhanced=i, original=i)
    assert v.shape == (2,)
    np.testing.assert_allclose(v, 0, atol=1e-7)


def test_spatial_paper_ignores_uniform_shift_official_does_not():
  i = regions([[[0.1, 0.3], [0.5, 0.2]]])
  y = i + 0.2
  assert float(losses.spatial_consistency_paper(enhanced=y, original=i)[0]) \
      == pytest.approx(0, abs=1e-7)
  # official: zero padding makes border regions compare against 0
  assert float(losses.spatial_consistency_official(enhanced=y,
                                                   original=i)[0]) > 0.01


# ---- exposure ----------------------------------------------------------------
def exposure_image():
  # two 16x16 patches with means 0.5 and 0.9, plus 8 columns that do not
  # fill a patch (dropped, as AvgPool2d does)
  img = np.zeros((1, 16, 40, 3), np.float32)
  img[:, :, :16] = 0.5
  img[:, :, 16:32] = 0.9
  img[:, :, 32:] = 1.0
  return jnp.asarray(img)


def test_exposure_official_hand_value():
  # mean((0.5-0.6)^2, (0.9-0.6)^2) = (0.01 + 0.09) / 2 = 0.05
  np.testing.assert_allclose(
      losses.exposure_control_official(exposure_image()), [0.05], rtol=1e-5)


def test_exposure_paper_hand_value():
  # mean(|0.5-0.6|, |0.9-0.6|) = 0.2
  np.testing.assert_allclose(
      losses.exposure_control_paper(exposure_image()), [0.2], rtol=1e-5)
  np.testing.assert_allclose(
      losses.exposure_control_paper(exposure_image(), level=0.5), [0.2],
      rtol=1e-5)


def test_patch_larger_than_image_raises():
  with pytest.raises(ValueError, match="smaller than the 16x16"):
    losses.exposure_control_official(jnp.zeros((1, 8, 8, 3)))


# ---- colour ------------------------------------------------------------------
def colour_image():
  img = np.broadcast_to(np.array([0.6, 0.4, 0.2], np.float32), (2, 4, 4, 3))
  return jnp.asarray(img)


def test_colour_hand_values():
  # D_rg = 0.04, D_rb = 0.16, D_gb = 0.04
  np.testing.assert_allclose(losses.color_constancy_paper(colour_image()),
                             [0.24, 0.24], rtol=1e-5)
  np.testing.assert_allclose(losses.color_constancy_official(colour_image()),
                             [np.sqrt(0.04**2 + 0.16**2 + 0.04**2)] * 2,
                             rtol=1e-5)


def test_colour_official_nan_trap_and_eps():
  gray = jnp.full((1, 4, 4, 3), 0.5)
  f0 = lambda x: losses.color_constancy_official(x).sum()
  assert np.isnan(np.asarray(jax.grad(f0)(gray))).all()
  f1 = lambda x: losses.color_constancy_official(x, eps=1e-8).sum()
  g = np.asarray(jax.grad(f1)(gray))
  assert np.isfinite(g).all()
  # eps changes the value by at most sqrt(eps)
  assert float(losses.color_constancy_official(gray, eps=1e-8)[0]) <= 1e-4


# ---- smoothness --------------------------------------------------------------
def tv_maps(n_sets=1):
  m = np.zeros((1, 2, 3, 3 * n_sets), np.float32)
  for k in range(n_sets):
    m[0, :, :, 3 * k] = [[0.0, 0.1, 0.2], [0.0, 0.1, 0.2]]
  return jnp.asarray(m)


def test_tv_official_hand_values():
  # 4 horizontal differences of 0.1: 2 * (0/3 + 0.04/4) = 0.02 per map set
  np.testing.assert_allclose(
      losses.illumination_smoothness_official(tv_maps(1)), [0.02], rtol=1e-5)
  np.testing.assert_allclose(
      losses.illumination_smoothness_official(tv_maps(2)), [0.04], rtol=1e-5)


def test_tv_paper_hand_values():
  # (|0.1| + 0)^2 on the (H-1)x(W-1)=1x2 pixels: mean 0.01, summed over
  # channels, divided by N (1 or 2 map sets)
  np.testing.assert_allclose(
      losses.illumination_smoothness_paper(tv_maps(1)), [0.01], rtol=1e-5)
  np.testing.assert_allclose(
      losses.illumination_smoothness_paper(tv_maps(2)), [0.01], rtol=1e-5)


# ---- gradients against finite differences ------------------------------------
def _terms():
  return {
      "spa_official": lambda y, i, a: losses.spatial_consistency_official(
          enhanced=y, original=i),
      "spa_paper": lambda y, i, a: losses.spatial_consistency_paper(
          enhanced=y, original=i),
      "exp_official": lambda y, i, a: losses.exposure_control_official(y),
      "exp_paper": lambda y, i, a: losses.exposure_control_paper(y),
      "col_official": lambda y, i, a: losses.color_constancy_official(y),
      "col_paper": lambda y, i, a: losses.color_constancy_paper(y),
      "tv_official": lambda y, i, a: losses.illumination_smoothness_official(a),
      "tv_paper": lambda y, i, a: losses.illumination_smoothness_paper(a),
  }


@pytest.mark.parametrize("name", sorted(_terms()))
def test_gradients_match_finite_differences(name):
  """Directional derivative of jax.grad vs central differences, in float64."""
  fn = _terms()[name]
  rng = np.random.default_rng(zlib.crc32(name.encode()))
  y = rng.uniform(0.05, 0.95, (2, 16, 16, 3))
  i = rng.uniform(0.05, 0.95, (2, 16, 16, 3))
  a = rng.uniform(-1, 1, (2, 16, 16, 6))
  wrt_maps = name.startswith("tv")
  with jax.enable_x64(True):
    def scalar(z):
      if wrt_maps:
        return jnp.sum(fn(jnp.asarray(y), jnp.asarray(i), z))
      return jnp.sum(fn(z, jnp.asarray(i), jnp.asarray(a)))

    z0 = a if wrt_maps else y
    g = np.asarray(jax.grad(scalar)(jnp.asarray(z0)))
    for _ in range(3):
      d = rng.normal(size=z0.shape)
      d /= np.linalg.norm(d)
      eps = 1e-6
      fd = (float(scalar(jnp.asarray(z0 + eps * d)))
            - float(scalar(jnp.asarray(z0 - eps * d)))) / (2 * eps)
      np.testing.assert_allclose((g * d).sum(), fd, rtol=1e-5, atol=1e-9)


# ---- total ---------------------------------------------------------------------
def test_total_loss_presets_and_terms():
  rng = np.random.default_rng(0)
  y = jnp.asarray(rng.uniform(size=(2, 16, 16, 3)), jnp.float32)
  i = jnp.asarray(rng.uniform(size=(2, 16, 16, 3)), jnp.float32)
  a = jnp.asarray(rng.uniform(-1, 1, size=(2, 16, 16, 24)), jnp.float32)
  loss, terms = losses.total_loss(enhanced=y, original=i, maps=a)
  expected = (200 * losses.illumination_smoothness_official(a).mean()
              + losses.spatial_consistency_official(enhanced=y,
                                                    original=i).mean()
              + 5 * losses.color_constancy_official(y).mean()
              + 10 * losses.exposure_control_official(y).mean())
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  assert sorted(terms) == ["col", "exp", "spa", "tv"]
  loss_p, _ = losses.total_loss(enhanced=y, original=i, maps=a,
                                weights="paper", variant="paper")
  expected_p = (20 * losses.illumination_smoothness_paper(a).mean()
                + losses.spatial_consistency_paper(enhanced=y,
                                                   original=i).mean()
                + 0.5 * losses.color_constancy_paper(y).mean()
                + losses.exposure_control_paper(y).mean())
  np.testing.assert_allclose(loss_p, expected_p, rtol=1e-6)
  assert losses.WEIGHTS["official_pp"]["tv"] == 1600


def test_total_loss_ablation_mixed_variant_and_extra_term():
  y = jnp.full((1, 16, 16, 3), 0.5)
  a = jnp.zeros((1, 16, 16, 24))
  loss, terms = losses.total_loss(
      enhanced=y, original=y, maps=a,
      weights={"exp": 1.0, "col": 0.0, "brightness": 2.0},
      variant={"exp": "paper"},
      extra_terms={"brightness": lambda *, enhanced, original, maps:
                   enhanced.mean(axis=(1, 2, 3))})
  assert sorted(terms) == ["brightness", "exp"]
  np.testing.assert_allclose(loss, 0.1 + 2 * 0.5, rtol=1e-6)


def test_total_loss_errors():
  y = jnp.full((1, 16, 16, 3), 0.5)
  with pytest.raises(ValueError, match="unknown weights preset"):
    losses.total_loss(enhanced=y, original=y, maps=y, weights="nope")
  with pytest.raises(ValueError, match="unknown terms"):
    losses.total_loss(enhanced=y, original=y, maps=y, weights={"spx": 1.0})
  with pytest.raises(ValueError, match="unknown variant"):
    losses.total_loss(enhanced=y, original=y, maps=y, variant="pape")
