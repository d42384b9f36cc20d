import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zerodce_jax.core import kernels as conv_kernels
from zerodce_jax.core import models

EXPECTED_PARAMS = {
    "zerodce": 79_416,      # SPEC section 8, official Zero-DCE
    "zerodce++": 10_561,    # official Zero-DCE++ snapshot
    # ablations, counted by hand: 3->w, w->w ..., 2w->w, 2w->3n, 3x3 + bias
    "3-32-8": (27 * 32 + 32) + (288 * 32 + 32) + (576 * 24 + 24),
    "7-16-8": ((27 * 16 + 16) + 3 * (144 * 16 + 16) + 2 * (288 * 16 + 16)
               + (288 * 24 + 24)),
    "7-32-1": 79_416 - (576 * 24 + 24) + (576 * 3 + 3),
    "7-32-16": 79_416 - (576 * 24 + 24) + (576 * 48 + 48),
}


def _init(model, shape=(1, 16, 16, 3), key=0):
  return model.init(jax.random.key(key), jnp.zeros(shape))["params"]


@pytest.mark.parametrize("arch", sorted(EXPECTED_PARAMS))
def test_param_counts(arch):
  assert models.count_params(_init(models.make_model(arch))) == (
      EXPECTED_PARAMS[arch])


def test_layer_names_are_the_file_format():
  p = _init(models.ZeroDCE())
  assert sorted(p) == [f"conv{k}" for k in range(1, 8)]
  assert p["conv5"]["kernel"].shape == (3, 3, 64, 32)
  assert p["conv7"]["kernel"].shape == (3, 3, 64, 24)
  q = _init(models.ZeroDCEpp())
  assert q["conv1"]["depthwise"]["kernel"].shape == (3, 3, 1, 3)
  assert q["conv7"]["pointwise"]["kernel"].shape == (1, 1, 64, 3)


@pytest.mark.parametrize("depth,expected", [
    (3, [(0,), (1,), (1, 2)]),
    (5, [(0,), (1,), (2,), (2, 3), (1, 4)]),
    (7, [(0,), (1,), (2,), (3,), (3, 4), (2, 5), (1, 6)]),
])
def test_skip_sources(depth, expected):
  assert models.skip_sources(depth) == expected


def test_even_depth_rejected():
  with pytest.raises(ValueError, match="odd"):
    models.skip_sources(6)


@pytest.mark.parametrize("arch", ["zerodce", "zerodce++", "3-32-8", "7-32-16"])
def test_outputs_in_range_with_paper_sign_maps(arch):
  model = models.make_model(arch)
  x = jax.random.uniform(jax.random.key(1), (2, 12, 20, 3))
  params = _init(model, x.shape)
  y, maps = model.apply({"params": params}, x)
  assert y.shape == x.shape
  assert maps.shape == (2, 12, 20, model.map_channels)
  assert float(y.min()) >= 0 and float(y.max()) <= 1
  assert float(jnp.abs(maps).max()) <= 1


def test_init_statistics():
  p = _init(models.ZeroDCE())
  k = np.concatenate([np.ravel(p[f"conv{i}"]["kernel"]) for i in range(1, 8)])
  assert abs(k.std() - 0.02) < 1e-3 and abs(k.mean()) < 1e-3
  assert all(not np.any(p[f"conv{i}"]["bias"]) for i in range(1, 8))
  t = _init(models.ZeroDCE(bias_init="torch"))
  b = np.asarray(t["conv2"]["bias"])
  bound = 1 / np.sqrt(32 * 9)
  assert np.all(np.abs(b) <= bound) and np.abs(b).max() > bound / 2


def test_zerodce_pp_any_size_returns_input_size():
  model = models.ZeroDCEpp(scale_factor=12)
  params = _init(models.ZeroDCEpp())
  x = jax.random.uniform(jax.random.key(2), (1, 50, 37, 3))
  y, maps = model.apply({"params": params}, x)
  assert y.shape == x.shape and maps.shape == (1, 50, 37, 3)
  with pytest.raises(ValueError, match="smaller than scale factor"):
    model.apply({"params": params}, jnp.zeros((1, 8, 40, 3)))


def test_scale_factor_needs_separable():
  with pytest.raises(ValueError, match="Zero-DCE\\+\\+"):
    models.ZeroDCE(scale_factor=4).init(jax.random.key(0),
                                        jnp.zeros((1, 16, 16, 3)))


def test_bad_input_shape():
  with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
    models.ZeroDCE().init(jax.random.key(0), jnp.zeros((16, 16, 3)))


def test_bfloat16_compute_float32_params():
  model = models.ZeroDCE(dtype=jnp.bfloat16)
  x = jax.random.uniform(jax.random.key(3), (1, 8, 8, 3))
  params = _init(model, x.shape)
  assert all(l.dtype == jnp.float32 for l in jax.tree_util.tree_leaves(params))
  y, _ = model.apply({"params": params}, x)
  assert y.dtype == jnp.bfloat16
  y32, _ = models.ZeroDCE().apply({"params": params}, x)
  np.testing.assert_allclose(np.asarray(y, np.float32), y32, atol=3e-2)


def test_jit_equals_eager():
  model = models.ZeroDCE()
  x = jax.random.uniform(jax.random.key(4), (2, 8, 8, 3))
  params = _init(model, x.shape)
  eager = model.apply({"params": params}, x)[0]
  jitted = jax.jit(model.apply)({"params": params}, x)[0]
  np.testing.assert_allclose(eager, jitted, atol=1e-6)


def test_unknown_arch():
  with pytest.raises(ValueError, match="unknown architecture"):
    models.make_model("zerodce-xl")


@pytest.mark.parametrize("kernels", conv_kernels.KERNEL_CHOICES)
@pytest.mark.parametrize("channels", [3, 32, 64])
def test_depthwise_shifts_equal_grouped_convolution(channels, kernels):
  rng = np.random.default_rng(channels)
  x = jnp.asarray(rng.random((2, 9, 11, channels)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, 1, channels)), jnp.float32)
  ref = jax.lax.conv_general_dilated(
      x, k, (1, 1), ((1, 1), (1, 1)),
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=channels, precision=jax.lax.Precision.HIGHEST)
  dw = functools.partial(conv_kernels.depthwise_conv3x3, kernels=kernels)
  np.testing.assert_allclose(dw(x, k), ref, atol=2e-6)
  g = jax.grad(lambda k: jnp.sum(jnp.tanh(dw(x, k))))(k)
  g_ref = jax.grad(lambda k: jnp.sum(jnp.tanh(jax.lax.conv_general_dilated(
      x, k, (1, 1), ((1, 1), (1, 1)),
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=channels,
      precision=jax.lax.Precision.HIGHEST))))(k)
  np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernels", conv_kernels.KERNEL_CHOICES)
@pytest.mark.parametrize("cout", [24, 32, 3])
def test_conv3x3_values_and_gradients_equal_xla_conv(cout, kernels):
  rng = np.random.default_rng(cout)
  x = jnp.asarray(rng.random((2, 7, 9, 5)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, 5, cout)), jnp.float32)
  ref = lambda x, k: jax.lax.conv_general_dilated(
      x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  conv = functools.partial(conv_kernels.conv3x3, kernels=kernels)
  np.testing.assert_array_equal(conv(x, k), ref(x, k))
  loss = lambda f: lambda x, k: jnp.sum(jnp.tanh(f(x, k)))
  gx, gk = jax.grad(loss(conv), argnums=(0, 1))(x, k)
  rx, rk = jax.grad(loss(ref), argnums=(0, 1))(x, k)
  np.testing.assert_allclose(gx, rx, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(gk, rk, rtol=1e-5, atol=1e-6)


def _float64_kernel_grads(x, g):
  """Float64 references: im2col^T @ g (dense), shifted-product sums
  (depthwise, g with x's channels)."""
  b, h, w, cin = x.shape
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  shifted = [xp[:, a:a + h, d:d + w] for a in range(3) for d in range(3)]
  cols = np.concatenate(shifted, -1).reshape(-1, 9 * cin)
  dense = (cols.T @ g.reshape(-1, g.shape[-1])).reshape(3, 3, cin, -1)
  depthwise = np.array([(s * g[..., :cin]).sum(axis=(0, 1, 2))
                        for s in shifted]).reshape(3, 3, 1, cin)
  return {"dense": dense, "depthwise": depthwise}


@pytest.mark.parametrize("kind", ["dense", "depthwise"])
@pytest.mark.parametrize("rows", [1, 2, 3, 8])
def test_kernel_grads_against_float64(rows, kind):
  """The blocked kernel gradients (``conv3x3_kernel_grad``,
  ``depthwise_kernel_grad``) equal float64 references, for row blocks that
  do and do not divide the height; bfloat16 in, float32 out."""
  rng = np.random.default_rng(rows)
  x = rng.random((2, 7, 5, 4))
  g = rng.normal(size=(2, 7, 5, 6 if kind == "dense" else 4))
  want = _float64_kernel_grads(x, g)[kind]
  fn = {"dense": conv_kernels.conv3x3_kernel_grad,
        "depthwise": conv_kernels.depthwise_kernel_grad}[kind]
  for dtype, tol in ((jnp.float32, dict(rtol=1e-5, atol=1e-5)),
                     (jnp.bfloat16, dict(rtol=0.03, atol=0.1))):
    got = fn(jnp.asarray(x, dtype), jnp.asarray(g, dtype), rows=rows)
    assert got.dtype == jnp.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, **tol)


def test_unknown_kernel_choice_is_refused():
  x = jnp.zeros((1, 4, 4, 3))
  with pytest.raises(ValueError, match="kernels must be one of"):
    conv_kernels.conv3x3(x, jnp.zeros((3, 3, 3, 4)), kernels="fast")
  with pytest.raises(ValueError, match="kernels must be one of"):
    conv_kernels.depthwise_conv3x3(x, jnp.zeros((3, 3, 1, 3)), kernels="gpu")


@pytest.mark.parametrize("cin", [1, 3, 4])
def test_few_channel_conv3x3_multiply_adds_equal_xla_conv(cin):
  """Up to TAPS_MAX_CHANNELS input channels the tuned forward pass is
  broadcast multiply-adds: same values and gradients as XLA's convolution."""
  assert cin <= conv_kernels.TAPS_MAX_CHANNELS
  rng = np.random.default_rng(cin)
  x = jnp.asarray(rng.random((2, 7, 9, cin)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, cin, 8)), jnp.float32)
  ref = lambda x, k: jax.lax.conv_general_dilated(
      x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
      precision=jax.lax.Precision.HIGHEST)
  tuned = functools.partial(conv_kernels.conv3x3, kernels="tuned")
  np.testing.assert_allclose(tuned(x, k), ref(x, k), rtol=1e-6, atol=1e-6)
  loss = lambda f: lambda x, k: jnp.sum(jnp.tanh(f(x, k)))
  for got, want in zip(jax.grad(loss(tuned), argnums=(0, 1))(x, k),
                       jax.grad(loss(ref), argnums=(0, 1))(x, k)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_depthwise_input_gradient_equals_grouped_conv():
  """The tuned depthwise conv's custom input gradient (shifted products with
  the flipped kernel) equals the grouped convolution's."""
  rng = np.random.default_rng(5)
  x = jnp.asarray(rng.random((2, 9, 6, 5)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, 1, 5)), jnp.float32)
  grads = [jax.grad(lambda x: jnp.sum(jnp.tanh(conv_kernels.depthwise_conv3x3(
      x, k, kernels=kern)) * x))(x) for kern in ("tuned", "native")]
  np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5, atol=1e-6)


def test_kernel_init_torch_is_pytorchs_default_and_normal_is_n002():
  """``kernel_init="torch"``: U(+-1/sqrt(fan_in)) for every kernel (the
  official Zero-DCE++ script keeps PyTorch's defaults); ``"normal"``:
  N(0, 0.02) (the official Zero-DCE script)."""
  pp = _init(models.make_model("zerodce++", kernel_init="torch",
                               bias_init="torch", scale_factor=1), key=3)
  fan_ins = {"depthwise": lambda k: 9, "pointwise": lambda k: k.shape[2]}
  for layer in pp.values():
    for part, fan_in in fan_ins.items():
      k = np.asarray(layer[part]["kernel"])
      bound = 1.0 / np.sqrt(fan_in(k))
      assert np.abs(k).max() <= bound
      # uniform: s.d. bound/sqrt(3); the sample is at least 96 weights
      assert np.std(k) == pytest.approx(bound / np.sqrt(3), rel=0.25)
  plain = _init(models.make_model("zerodce", kernel_init="normal"), key=3)
  k = np.concatenate([np.ravel(v["kernel"]) for v in plain.values()])
  assert np.std(k) == pytest.approx(0.02, rel=0.02)
  with pytest.raises(ValueError, match="kernel_init must be"):
    _init(models.make_model("zerodce", kernel_init="he"))
  try:
    import torch
  except ImportError:
    return
  # PyTorch's own default for a depthwise 3x3 conv has the same bound
  conv = torch.nn.Conv2d(64, 64, 3, groups=64)
  w = torch.cat([conv.reset_parameters() or conv.weight.detach().ravel()
                 for _ in range(20)]).numpy()
  assert np.abs(w).max() == pytest.approx(1 / 3, rel=0.01)
