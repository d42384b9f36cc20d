"""The measured alternative convolutions equal XLA's; the profiler finds the
ops a jitted function spends its time in."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import conv_candidates, profiling
from zerodce_jax.core import models


@pytest.mark.parametrize("name", sorted(conv_candidates.CANDIDATES))
@pytest.mark.parametrize("shape", [(2, 7, 9, 6), (1, 4, 4, 3)])
def test_candidate_equals_xla_convolution(name, shape):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.random(shape, np.float32))
  k = jnp.asarray(rng.normal(0, 0.3, (3, 3, shape[-1], 5)).astype(np.float32))
  want = np.asarray(conv_candidates.xla(x, k))
  got = np.asarray(jax.jit(conv_candidates.CANDIDATES[name])(x, k))
  assert got.shape == want.shape == shape[:3] + (5,)
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_winograd_matches_hand_computed_single_tile():
  # one 2x2 output from a 2x2 image and an all-ones 3x3 kernel: every output
  # pixel sums the whole zero-padded image
  x = jnp.arange(1.0, 5.0).reshape(1, 2, 2, 1)
  k = jnp.ones((3, 3, 1, 1))
  np.testing.assert_allclose(
      np.asarray(conv_candidates.winograd_f2x3(x, k))[0, :, :, 0],
      [[10.0, 10.0], [10.0, 10.0]], atol=1e-6)


def test_conv_layers_of_zerodce():
  layers = profiling.conv_layers(models.ARCHITECTURES["zerodce"])
  assert [(r["cin"], r["cout"], r["concat"]) for r in layers] == [
      (3, 32, False), (32, 32, False), (32, 32, False), (32, 32, False),
      (64, 32, True), (64, 32, True), (64, 24, True)]
  with pytest.raises(ValueError, match="separable"):
    profiling.conv_layers(models.ARCHITECTURES["zerodce++"])


def test_op_profile_names_the_convolution():
  x = jnp.ones((1, 64, 64, 16))
  k = jnp.ones((3, 3, 16, 16)) * 0.1
  rows = profiling.op_profile(
      lambda a, b: jnp.tanh(conv_candidates.xla(a, b)) * 2.0, x, k,
      repeats=2)
  kinds = {r["kind"] for r in rows}
  # XLA:CPU runs the convolution itself or hands it to a kernel library
  assert kinds & {"convolution", "library"}, rows
  assert all(r["s_per_call"] > 0 for r in rows)
  assert sum(r["share"] for r in rows if r["kind"] != "while") == (
      pytest.approx(1.0))


@pytest.mark.parametrize("opcode,name,kind", [
    ("convolution", "convolution.3", "convolution"), ("dot", "dot.1", "dot"),
    ("while", "while.2", "while"), ("fusion", "add_fusion", "fusion"),
    ("fusion", "ynn_fusion.4", "library"), ("copy", "copy.1", "other"),
    ("pad", "pad", "other")])
def test_op_kind(opcode, name, kind):
  assert profiling.op_kind(opcode, name) == kind
