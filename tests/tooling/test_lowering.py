"""Per-platform kernels, checked on CPU by lowering for cuda and tpu.

The train step ``zerodce train`` runs (real model, official losses, clipped
Adam) and the inference function ``zerodce enhance`` compiles are lowered
with ``jax.export`` for each platform, and their StableHLO is read: GPU/TPU
programs use XLA's native convolutions for the forward pass, the input
gradient and the kernel gradient, with no ``while`` loop; the CPU program
keeps the tuned kernels (a scan for the kernel gradient, shifted products
for depthwise convolutions).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zerodce_jax import training
from zerodce_jax.training import config_utils
from benchmarks import lowering
from zerodce_jax.core import models

# 7 layers: 7 forward convolutions, 6 input gradients (the image needs none),
# 7 kernel gradients.
NATIVE_TRAIN = {"while": 0, "convolution": 20}
CPU_TRAIN = {
    # forward (but the 3-channel first layer's, multiply-adds) + input
    # gradients native (6 + 6); 7 kernel gradients as scans
    "zerodce": {"while": 7, "convolution": 12},
    # depthwise as shifted products, their 7 kernel gradients as scans;
    # 7 pointwise products (+ 14 gradients)
    "zerodce++": {"while": 7, "convolution": 0, "dot_general": 21},
}


def _config(name):
  return config_utils.load_config(f"configs/{name}.py")


@pytest.mark.parametrize("config,arch", [("zerodce_official", "zerodce"),
                                         ("zerodce_pp_official", "zerodce++")])
@pytest.mark.parametrize("platform", ["cuda", "tpu", "cpu"])
def test_train_step_lowering(config, arch, platform):
  counts = lowering.train_step_ops(_config(config), platform=platform)
  want = CPU_TRAIN[arch] if platform == "cpu" else NATIVE_TRAIN
  assert {k: counts[k] for k in want} == want, counts


@pytest.mark.parametrize("arch", ["zerodce", "zerodce++"])
@pytest.mark.parametrize("platform", ["cuda", "tpu", "cpu"])
def test_inference_lowering(arch, platform):
  counts = lowering.inference_ops(models.make_model(arch), platform=platform)
  assert counts["while"] == 0
  # on CPU: Zero-DCE's 3-channel first layer as multiply-adds, Zero-DCE++'s
  # depthwise layers as shifted products
  want = 7 if platform != "cpu" else {"zerodce": 6, "zerodce++": 0}[arch]
  assert counts["convolution"] == want, counts


def test_one_exported_program_carries_both_branches():
  """Lowered for cpu and cuda together (as ``zerodce export --format
  stablehlo`` does), the program holds the tuned and the native kernels and
  picks one by the platform it is loaded on."""
  model = models.make_model("3-32-8")
  x = jax.ShapeDtypeStruct((1, 16, 16, 3), jnp.float32)
  params = jax.eval_shape(model.init, jax.random.key(0), x)["params"]
  grad = jax.grad(lambda p, x: model.apply({"params": p}, x)[0].sum())
  exp = jax.export.export(jax.jit(grad), platforms=["cpu", "cuda"])(params, x)
  both = lowering.op_counts(exp.mlir_module())
  cpu, cuda = (lowering.op_counts(lowering.lower_text(grad, params, x,
                                                      platform=p))
               for p in ("cpu", "cuda"))
  # cpu: forward (the RGB first layer as multiply-adds) and input gradients
  assert (cpu["while"], cpu["convolution"]) == (3, 2 + 2)
  assert (cuda["while"], cuda["convolution"]) == (0, 3 + 2 + 3)
  # the tuned kernel gradients and the native ones are both in the program
  assert both["while"] == 3
  assert both["convolution"] >= cuda["convolution"] + 2 + 2, both


@pytest.mark.parametrize("arch", ["zerodce", "zerodce++"])
def test_cpu_tuned_and_native_kernels_agree(arch):
  """On CPU the default (tuned) and the native kernels give the same
  enhancement and the same train step, to float32 rounding."""
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.random((2, 24, 20, 3)) * 0.5, jnp.float32)
  auto = models.make_model(arch, bias_init="torch")
  native = models.make_model(arch, bias_init="torch", kernels="native")
  params = auto.init(jax.random.key(1), x)["params"]
  np.testing.assert_allclose(auto.apply({"params": params}, x)[0],
                             native.apply({"params": params}, x)[0],
                             atol=2e-6)
  tx = training.make_optimizer()
  states = []
  for m in (auto, native):
    st = training.TrainState.create(apply_fn=m.apply, params=params, tx=tx)
    step = jax.jit(functools.partial(training.train_step,
                                     loss_fn=training.make_loss_fn(m)))
    st, metrics = step(st, x)
    st, metrics = step(st, x)
    states.append((st.params, metrics))
  (pa, ma), (pn, mn) = states
  np.testing.assert_allclose(ma["grad_norm"], mn["grad_norm"], rtol=1e-5)
  jax.tree_util.tree_map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
      pa, pn)
