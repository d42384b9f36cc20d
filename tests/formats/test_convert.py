import jax
import numpy as np
import pytest

from zerodce_jax import cli
from zerodce_jax.formats import convert, params_io
from zerodce_jax.core import models


def test_flush_denormals():
  x = np.array([1e-39, -1e-40, 1.2e-38, 0.0, 0.5, -3e-45], np.float32)
  y, n = convert.flush_denormals(x)
  assert n == 3
  np.testing.assert_array_equal(y, [0, 0, np.float32(1.2e-38), 0, 0.5, 0])


def test_layout_and_sign_on_a_synthetic_state_dict():
  rng = np.random.default_rng(0)
  state = {}
  shapes = [(32, 3), (32, 32), (32, 32), (32, 32), (32, 64), (32, 64),
            (24, 64)]
  for k, (o, i) in enumerate(shapes, start=1):
    state[f"e_conv{k}.weight"] = rng.normal(size=(o, i, 3, 3)).astype(
        np.float32)
    state[f"e_conv{k}.bias"] = rng.normal(size=(o,)).astype(np.float32)
  params, fields, n = convert.convert_state_dict(state)
  assert fields == dict(depth=7, width=32, iterations=8, separable=False)
  assert n == 0
  w = state["e_conv2.weight"]
  # OIHW[o, i, h, w] == HWIO[h, w, i, o]
  assert params["conv2"]["kernel"][1, 2, 5, 7] == w[7, 5, 1, 2]
  np.testing.assert_array_equal(params["conv7"]["kernel"],
                                -np.transpose(state["e_conv7.weight"],
                                              (2, 3, 1, 0)))
  np.testing.assert_array_equal(params["conv7"]["bias"],
                                -state["e_conv7.bias"])
  with pytest.raises(ValueError, match="not zerodce\\+\\+"):
    convert.convert_state_dict(state, arch="zerodce++")
  del state["e_conv3.bias"]
  with pytest.raises(ValueError, match="lacks e_conv3.bias"):
    convert.convert_state_dict(state)


def test_official_zerodce_snapshot(official_zerodce):
  params, fields, flushed = official_zerodce
  assert fields == dict(depth=7, width=32, iterations=8, separable=False)
  assert models.count_params(params) == 79_416
  assert flushed == 19_266  # SPEC section 8


def test_official_zerodce_pp_snapshot(official_zerodce_pp):
  params, fields, flushed = official_zerodce_pp
  assert fields == dict(depth=7, width=32, iterations=8, separable=True)
  assert models.count_params(params) == 10_561
  assert flushed > 0


@pytest.mark.parametrize("name,arch", [
    ("zerodce_official_epoch99.pth", "zerodce"),
    ("zerodce_pp_official_epoch99.pth", "zerodce++"),
])
def test_convert_command_round_trip(shared, tmp_path, capsys, name, arch):
  out = tmp_path / "sub" / "w.msgpack"
  rc = cli.main(["convert", str(shared / "weights" / name), "-o", str(out),
                 "--arch", arch])
  assert rc == 0
  msg = capsys.readouterr().out
  assert "denormal weights flushed" in msg and arch in msg
  params, fields, source = params_io.load_params(str(out))
  assert "CC BY-NC" in source
  direct, _, _ = convert.convert_official(str(shared / "weights" / name))
  jax.tree_util.tree_map(np.testing.assert_array_equal, params, direct)


def test_convert_command_errors(shared, tmp_path, capsys):
  weights = shared / "weights" / "zerodce_pp_official_epoch99.pth"
  assert cli.main(["convert", str(weights), "-o", str(tmp_path / "w"),
                   "--arch", "zerodce"]) == 2
  err = capsys.readouterr().err
  assert str(weights) in err and "not zerodce" in err
  assert cli.main(["convert", str(tmp_path / "missing.pth"), "-o",
                   str(tmp_path / "w")]) == 2
  assert "no such file" in capsys.readouterr().err
  junk = tmp_path / "junk.pth"
  junk.write_bytes(b"hello")
  assert cli.main(["convert", str(junk), "-o", str(tmp_path / "w")]) == 2
  assert "junk.pth" in capsys.readouterr().err
  assert not (tmp_path / "w").exists()
