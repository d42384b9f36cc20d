"""Number-for-number equivalence with the official PyTorch models.

References in ../shared/reference were made by running the official code on
CPU in float32 (see ../shared/README.md). Tolerances: images and maps 1e-5
max abs; loss values and gradients 1e-5 relative (gradients: per tensor,
||ours - ref|| / ||ref||; both float32 results sit 3-6e-6 from a float64
gradient, so this is float32 rounding, not a model difference).
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zerodce_jax.core import losses, models

CROPS = ["DICM__01.jpg", "DICM__12.jpg", "LIME__3.bmp", "LIME__7.bmp"]


@pytest.fixture(scope="module")
def crops(shared):
  return np.load(shared / "reference" / "zerodce_official_crops.npz")


@pytest.fixture(scope="module")
def zerodce_outputs(crops, official_zerodce):
  params, fields, _ = official_zerodce
  model = models.DCENet(**fields, return_intermediate=(4,))
  x = np.stack([crops[f"{n}/input"] for n in CROPS])
  return jax.jit(model.apply)({"params": params}, x)


@pytest.mark.parametrize("i,name", list(enumerate(CROPS)))
def test_zerodce_crops(crops, zerodce_outputs, i, name):
  enhanced, maps, inter = zerodce_outputs
  np.testing.assert_allclose(enhanced[i], crops[f"{name}/zerodce_enhanced"],
                             rtol=0, atol=1e-5)
  np.testing.assert_allclose(inter[4][i],
                             crops[f"{name}/zerodce_enhanced_iter4"],
                             rtol=0, atol=1e-5)
  # official sign r = -a
  np.testing.assert_allclose(
      -maps[i], crops[f"{name}/zerodce_curve_maps_official_sign"], rtol=0,
      atol=1e-5)


@pytest.mark.parametrize("scale", [1, 12])
def test_zerodce_pp_crops(crops, official_zerodce_pp, scale):
  params, fields, _ = official_zerodce_pp
  model = models.DCENet(**fields, scale_factor=scale)
  x = np.stack([crops[f"{n}/input"] for n in CROPS])
  enhanced, maps = jax.jit(model.apply)({"params": params}, x)
  for i, name in enumerate(CROPS):
    np.testing.assert_allclose(
        enhanced[i], crops[f"{name}/zerodce_pp_s{scale}_enhanced"], rtol=0,
        atol=1e-5)
    np.testing.assert_allclose(
        -maps[i], crops[f"{name}/zerodce_pp_s{scale}_curve_map_official_sign"],
        rtol=0, atol=1e-5)


@pytest.mark.slow
def test_zerodce_full_image(shared, official_zerodce):
  ref = np.load(shared / "reference" / "zerodce_official_full.npz")
  params, fields, _ = official_zerodce
  x = ref["DICM__01.jpg/input"][None]
  enhanced, _ = jax.jit(models.DCENet(**fields).apply)({"params": params}, x)
  np.testing.assert_allclose(enhanced[0], ref["DICM__01.jpg/zerodce_enhanced"],
                             rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def grads_ref(shared):
  return np.load(shared / "reference" / "zerodce_official_grads.npz")


def _official_loss(params, model, batch):
  enhanced, maps = model.apply({"params": params}, batch)
  return losses.total_loss(enhanced=enhanced, original=batch, maps=maps,
                           weights="official", variant="official")


def test_official_loss_terms(shared, grads_ref, official_zerodce):
  summary = json.loads((shared / "reference" /
                        "zerodce_official_summary.json").read_text())
  ref = summary["losses_on_crop_batch"]
  params, fields, _ = official_zerodce
  loss, terms = jax.jit(_official_loss, static_argnums=1)(
      params, models.DCENet(**fields), grads_ref["batch"])
  np.testing.assert_allclose(terms["tv"], ref["tv_A"], rtol=1e-5)
  np.testing.assert_allclose(terms["spa"], ref["spa"], rtol=1e-5)
  np.testing.assert_allclose(terms["col"], ref["col"], rtol=1e-5)
  np.testing.assert_allclose(terms["exp"], ref["exp"], rtol=1e-5)
  np.testing.assert_allclose(loss, ref["total_official_weights"], rtol=1e-5)


def test_official_loss_gradients(grads_ref, official_zerodce):
  params, fields, _ = official_zerodce
  model = models.DCENet(**fields)
  grad_fn = jax.jit(jax.grad(lambda p, b: _official_loss(p, model, b)[0]))
  g = grad_fn(params, jnp.asarray(grads_ref["batch"]))
  for k in range(1, 8):
    sign = -1.0 if k == 7 else 1.0  # our conv7 is the negated official one
    ref_w = sign * np.transpose(grads_ref[f"grad/e_conv{k}.weight"],
                                (2, 3, 1, 0))
    ref_b = sign * grads_ref[f"grad/e_conv{k}.bias"]
    for ours, ref in ((g[f"conv{k}"]["kernel"], ref_w),
                      (g[f"conv{k}"]["bias"], ref_b)):
      rel = np.linalg.norm(np.asarray(ours) - ref) / np.linalg.norm(ref)
      assert rel < 1e-5, f"conv{k}: relative gradient error {rel:.2e}"
