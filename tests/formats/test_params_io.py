import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _support import optional

from zerodce_jax.core import models
from zerodce_jax.formats import params_io, weights


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
  with pytest.raises(params_io.WeightsError, match="do not match the architecture"):
    params_io.load_params(path)


def test_missing_and_garbage(tmp_path):
  with pytest.raises(params_io.WeightsError, match="no such weights file"):
    params_io.load_params(str(tmp_path / "nope.msgpack"))
  bad = tmp_path / "bad.msgpack"
  bad.write_bytes(b"\x00\x01garbage")
  with pytest.raises(params_io.WeightsError, match="bad.msgpack"):
    params_io.load_params(str(bad))


def _doc(arch=None, params=None, **over):
  model = models.make_model("3-32-8")
  doc = {"format": params_io.FORMAT, "version": 1,
         "arch": arch if arch is not None else params_io.arch_of(model),
         "source": "test",
         "params": params if params is not None else jax.tree_util.tree_map(
             np.asarray, _params(model))}
  doc.update(over)
  return doc


def _write(path, doc):
  import flax.serialization
  path.write_bytes(flax.serialization.msgpack_serialize(doc))
  return str(path)


def _ext_array(shape, dtype, buffer):
  """flax's msgpack encoding of an ndarray, with whatever shape we claim."""
  import msgpack
  return msgpack.ExtType(1, msgpack.packb((shape, dtype, buffer)))


def _crafted(path, leaf):
  """A weights file whose conv1 kernel is the raw msgpack value ``leaf``."""
  import flax.serialization
  import msgpack
  doc = _doc()
  raw = flax.serialization.msgpack_serialize(doc)
  tree = msgpack.unpackb(raw, raw=False, strict_map_key=False)
  tree["params"]["conv1"]["kernel"] = leaf
  path.write_bytes(msgpack.packb(tree))
  return str(path)


def test_hostile_weights_files_fail_clearly_before_allocating(tmp_path):
  import tracemalloc
  good = _params(models.make_model("3-32-8"))
  k1 = np.asarray(good["conv1"]["kernel"])
  cases = {
      # a leaf declaring 10**5 x 10**5 x 3 x 32 floats on 4 bytes of data
      "huge": (_crafted(tmp_path / "huge.msgpack", _ext_array(
          (10**5, 10**5, 3, 32), "float32", b"\0" * 4)), "not a zerodce"),
      "dtype": (_crafted(tmp_path / "int.msgpack", _ext_array(
          list(k1.shape), "int32", k1.astype(np.int32).tobytes())),
                "int32, not a floating"),
      "object": (_crafted(tmp_path / "obj.msgpack", _ext_array(
          list(k1.shape), "O", b"\0" * (k1.size * 8))), "not a zerodce"),
      "nan": (_write(tmp_path / "nan.msgpack", _doc(params={
          **jax.tree_util.tree_map(np.asarray, good),
          "conv1": {"kernel": np.full_like(k1, np.nan),
                    "bias": np.asarray(good["conv1"]["bias"])}})),
              "NaN or infinite"),
      "missing layer": (_write(tmp_path / "miss.msgpack", _doc(params={
          k: v for k, v in jax.tree_util.tree_map(np.asarray, good).items()
          if k != "conv2"})), "missing: \\['conv2/bias'"),
      "extra layer": (_write(tmp_path / "extra.msgpack", _doc(params={
          **jax.tree_util.tree_map(np.asarray, good),
          "conv9": {"kernel": k1}})), "unexpected: \\['conv9/kernel'"),
      "arch width": (_write(tmp_path / "w.msgpack", _doc(arch={
          "depth": 3, "width": 10**9, "iterations": 8, "separable": False})),
                     "width must be an integer in"),
      "arch depth": (_write(tmp_path / "d.msgpack", _doc(arch={
          "depth": 4, "width": 32, "iterations": 8, "separable": False})),
                     "depth must be odd"),
      "arch type": (_write(tmp_path / "t.msgpack", _doc(arch={
          "depth": "7", "width": 32, "iterations": 8, "separable": False})),
                    "depth must be an integer"),
      "arch fields": (_write(tmp_path / "f.msgpack", _doc(arch={
          "depth": 3})), "exactly the fields"),
      "no arch": (_write(tmp_path / "n.msgpack", _doc(arch=[])),
                  "exactly the fields"),
      "format": (_write(tmp_path / "fmt.msgpack", _doc(format="other")),
                 "not a zerodce-jax weights file"),
  }
  for what, (path, match) in cases.items():
    tracemalloc.start()
    try:
      with pytest.raises(params_io.WeightsError, match=match) as info:
        params_io.load_params(path)
    finally:
      peak = tracemalloc.get_traced_memory()[1]
      tracemalloc.stop()
    assert str(info.value).startswith(path), what
    assert peak < 50 * 2**20, (what, peak)


def test_damaged_bundled_weights_never_crash(tmp_path):
  data = open(weights.asset_path("zerodce_default.msgpack"), "rb").read()
  rng = np.random.default_rng(0)
  path = tmp_path / "w.msgpack"
  outcomes = {"loaded": 0, "refused": 0}
  for i in range(150):
    if i < 50:
      damaged = data[:int(rng.integers(0, len(data)))]
    else:
      b = bytearray(data)
      # flips land mostly in the structure (first 2 kB) rather than floats
      pos = int(rng.integers(0, 2048 if i % 2 else len(data)))
      b[pos] ^= 1 << int(rng.integers(0, 8))
      damaged = bytes(b)
    path.write_bytes(damaged)
    try:
      params_io.load_params(str(path))
      outcomes["loaded"] += 1
    except params_io.WeightsError as e:
      assert "\n" not in str(e)
      outcomes["refused"] += 1
  assert outcomes["refused"] >= 50, outcomes


def test_random_bytes_as_weights(tmp_path):
  hypothesis = optional("hypothesis", extra="test")
  path = tmp_path / "r.msgpack"

  @hypothesis.settings(max_examples=200, deadline=None, database=None,
                       derandomize=True)
  @hypothesis.given(hypothesis.strategies.binary(max_size=256))
  def check(data):
    path.write_bytes(data)
    with pytest.raises(params_io.WeightsError):
      params_io.load_params(str(path))

  check()
