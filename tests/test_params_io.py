import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zerodce_jax import models, params_io


def _params(model):
  return model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))["params"]


def test_round_trip(tmp_path):
  model = models.make_model("7-16-8")
  p = _params(model)
  path = str(tmp_path / "w.msgpack")
  params_io.save_params(path, p, arch=params_io.arch_of(model), source="test")
  q, arch, source = params_io.load_params(path,
                                          expect_arch=params_io.arch_of(model))
  assert arch == dict(depth=7, width=16, iterations=8, separable=False)
  assert source == "test"
  jax.tree_util.tree_map(np.testing.assert_array_equal, p, q)
  assert not list(tmp_path.glob("*.tmp-*"))


def test_mismatched_arch(tmp_path):
  p = _params(models.ZeroDCEpp())
  path = str(tmp_path / "pp.msgpack")
  params_io.save_params(path, p, arch=params_io.arch_of(models.ZeroDCEpp()))
  with pytest.raises(params_io.WeightsError, match="pp.msgpack.*separable"):
    params_io.load_params(path, expect_arch=params_io.arch_of(models.ZeroDCE()))


def test_lying_file_is_refused(tmp_path):
  p = _params(models.make_model("3-32-8"))
  path = str(tmp_path / "w.msgpack")
  params_io.save_params(path, p, arch=params_io.arch_of(models.ZeroDCE()))
  with pytest.raises(params_io.WeightsError, match="shapes do not match"):
    params_io.load_params(path)


def test_missing_and_garbage(tmp_path):
  with pytest.raises(params_io.WeightsError, match="no such weights file"):
    params_io.load_params(str(tmp_path / "nope.msgpack"))
  bad = tmp_path / "bad.msgpack"
  bad.write_bytes(b"\x00\x01garbage")
  with pytest.raises(params_io.WeightsError, match="bad.msgpack"):
    params_io.load_params(str(bad))
