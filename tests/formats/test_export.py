"""`zerodce export`: ONNX and StableHLO files equal to the live model, plain
ops only, runnable without this package; `enhance --runtime onnx`."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _support import optional
from PIL import Image

from zerodce_jax import cli
from zerodce_jax.apps import enhance
from zerodce_jax.formats import export, weights
from zerodce_jax.core import models

onnx = optional("onnx", extra="export")
ort = optional("onnxruntime", extra="export")

ROOT = pathlib.Path(__file__).resolve().parents[2]
CROPS = ["DICM__01.jpg", "DICM__12.jpg", "LIME__3.bmp", "LIME__7.bmp"]


def _random_params(name, seed=0):
  model = models.make_model(name, bias_init="torch")
  params = model.init(jax.random.key(seed), jnp.zeros((1, 16, 16, 3)))
  return jax.tree_util.tree_map(np.asarray, params["params"]), dict(
      models.ARCHITECTURES[name])


def _session(data):
  return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def _jax(params, arch, x, scale_factor=1):
  model = models.DCENet(**arch, scale_factor=scale_factor)
  enhanced, maps = jax.jit(model.apply)({"params": params}, x)
  return np.asarray(enhanced), np.asarray(maps)


CASES = [("zerodce", 1), ("zerodce++", 1), ("zerodce++", 12), ("3-32-8", 1),
         ("7-16-8", 1), ("7-32-1", 1), ("7-32-16", 1)]


@pytest.mark.parametrize("name,sf", CASES)
def test_onnx_equals_jax_for_every_architecture(name, sf):
  params, arch = _random_params(name)
  data = export.export_onnx(params, arch, scale_factor=sf, with_maps=True,
                            source="test")
  x = np.random.default_rng(1).random((2, 37, 50, 3)).astype(np.float32)
  ref_e, ref_m = _jax(params, arch, x, sf)
  got_e, got_m = _session(data).run(None, {"image": x})
  assert got_e.shape == x.shape and got_m.shape == ref_m.shape
  np.testing.assert_allclose(got_e, ref_e, rtol=0, atol=1e-5)
  np.testing.assert_allclose(got_m, ref_m, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name,sf", [("zerodce", 1), ("zerodce++", 12)])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_onnx_graph_is_plain_and_self_describing(name, sf, dtype):
  params, arch = _random_params(name)
  model = onnx.load_from_string(export.export_onnx(
      params, arch, scale_factor=sf, dtype=dtype, with_maps=True,
      source="weights.msgpack"))
  onnx.checker.check_model(model, full_check=True)
  ops = {n.op_type for n in model.graph.node}
  assert ops <= export.ONNX_OPS, ops - export.ONNX_OPS
  assert {"Conv", "Relu", "Tanh", "Concat", "Mul", "Add", "Sub"} <= ops
  assert ("Resize" in ops) == (sf != 1) and ("Cast" in ops) == (
      dtype == "float16")
  assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)
  assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
  meta = {p.key: p.value for p in model.metadata_props}
  assert meta["format"] == export.ONNX_FORMAT_TAG
  assert json.loads(meta["arch"]) == arch
  assert meta["scale_factor"] == str(sf) and meta["dtype"] == dtype
  assert "NHWC" in meta["layout"] and meta["source_weights"] == (
      "weights.msgpack")
  dims = [d.dim_param for d in
          model.graph.input[0].type.tensor_type.shape.dim[:3]]
  assert dims == ["batch", "height", "width"]
  weights = [i for i in model.graph.initializer if len(i.dims) == 4]
  want = onnx.TensorProto.FLOAT16 if dtype == "float16" else (
      onnx.TensorProto.FLOAT)
  assert weights and all(w.data_type == want for w in weights)


def test_fixed_sizes_and_float16():
  params, arch = _random_params("zerodce")
  data = export.export_onnx(params, arch, height=20, width=24, batch=3,
                            dtype="float16")
  sess = _session(data)
  assert sess.get_inputs()[0].shape == [3, 20, 24, 3]
  x = np.random.default_rng(2).random((3, 20, 24, 3)).astype(np.float32)
  (got,) = sess.run(None, {"image": x})
  ref, _ = _jax(params, arch, x)
  assert got.dtype == np.float32
  assert np.abs(got - ref).max() <= 1e-2 and np.abs(got - ref).mean() <= 1e-3
  with pytest.raises(Exception):  # noqa: B017 - onnxruntime's own error
    sess.run(None, {"image": x[:, :10]})


def test_export_options_that_cannot_be_made():
  params, arch = _random_params("zerodce")
  pp_params, pp_arch = _random_params("zerodce++")
  for fn, kw, match in [
      (export.export_onnx, dict(dtype="bfloat16"), "float32 or float16"),
      (export.export_onnx, dict(scale_factor=4), "Zero-DCE\\+\\+ weights"),
      (export.export_stablehlo, dict(dtype="int8"), "not 'int8'"),
      (export.export_onnx, dict(height=0), "positive")]:
    with pytest.raises(export.ExportError, match=match):
      fn(params, arch, **kw)
  with pytest.raises(export.ExportError, match="smaller than the scale"):
    export.export_onnx(pp_params, pp_arch, scale_factor=12, height=8)


def test_official_weights_exported_give_the_official_outputs(
    shared, official_zerodce, official_zerodce_pp):
  crops = np.load(shared / "reference" / "zerodce_official_crops.npz")
  x = np.stack([crops[f"{n}/input"] for n in CROPS])
  params, arch, _ = official_zerodce
  (got,) = _session(export.export_onnx(params, arch)).run(None, {"image": x})
  for i, name in enumerate(CROPS):
    np.testing.assert_allclose(got[i], crops[f"{name}/zerodce_enhanced"],
                               rtol=0, atol=1e-5)
  params, arch, _ = official_zerodce_pp
  for s in (1, 12):
    (got,) = _session(export.export_onnx(params, arch, scale_factor=s)).run(
        None, {"image": x})
    for i, name in enumerate(CROPS):
      np.testing.assert_allclose(
          got[i], crops[f"{name}/zerodce_pp_s{s}_enhanced"], rtol=0,
          atol=1e-5)


@pytest.mark.slow
def test_onnx_on_the_official_test_images(shared, official_zerodce,
                                          official_zerodce_pp, full):
  """The official test images at their own sizes through one dynamic-axes
  file each: float32 within 1e-5 of JAX; float16 (emulated, slow on a CPU)
  within 1e-2 (mean 1e-3). ``--full``: all 73, float16 on every 6th; the
  default run: every 12th (7 images, DICM and LIME), float16 on every 3rd
  of those."""
  paths = sorted((shared / "test_images").glob("*/*"))
  assert len(paths) == 73
  paths = paths if full else paths[::12]
  images = [np.asarray(Image.open(p).convert("RGB"), np.float32) / 255
            for p in paths]
  worst = {}
  for (params, arch, _), sf in [(official_zerodce, 1),
                                (official_zerodce_pp, 1),
                                (official_zerodce_pp, 12)]:
    model = models.DCENet(**arch, scale_factor=sf)
    refs = enhance.Enhancer(model, params, batch_size=1)(images)
    for dtype, tol, every in (("float32", 1e-5, 1),
                              ("float16", 1e-2, 6 if full else 3)):
      sess = _session(export.export_onnx(params, arch, scale_factor=sf,
                                         dtype=dtype))
      errs = [np.abs(sess.run(None, {"image": im[None]})[0][0] - ref)
              for im, ref in list(zip(images, refs))[::every]]
      key = f"{'zerodce++' if arch['separable'] else 'zerodce'} s={sf} {dtype}"
      worst[key] = (max(e.max() for e in errs), max(e.mean() for e in errs))
      assert worst[key][0] <= tol, (key, worst[key])
      if dtype == "float16":
        assert worst[key][1] <= 1e-3, (key, worst[key])
  print(json.dumps({k: [float(a), float(b)] for k, (a, b) in worst.items()}))


@pytest.mark.parametrize("name,sf", [("zerodce", 1), ("zerodce++", 12)])
def test_stablehlo_round_trip(name, sf):
  params, arch = _random_params(name)
  exp = jax.export.deserialize(bytearray(export.export_stablehlo(
      params, arch, scale_factor=sf, with_maps=True)))
  assert {"cpu", "cuda", "tpu"} <= set(exp.platforms)
  assert str(exp.in_avals[0].shape) == "(b, h, w, 3)"
  for shape in ((1, 36, 48, 3), (2, 29, 61, 3)):
    x = np.random.default_rng(3).random(shape).astype(np.float32)
    ref_e, ref_m = _jax(params, arch, x, sf)
    got_e, got_m = exp.call(x)
    np.testing.assert_allclose(got_e, ref_e, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got_m, ref_m, rtol=0, atol=1e-6)


_STANDALONE = """
import sys, numpy as np, jax
x = np.load(sys.argv[2])
exp = jax.export.deserialize(bytearray(open(sys.argv[1], "rb").read()))
y = np.asarray(exp.call(x))
assert not any(m.startswith("zerodce_jax") for m in sys.modules), "imported"
np.save(sys.argv[3], y)
print(exp.platforms)
"""


def test_cli_export_both_formats_and_run_without_the_package(tmp_path,
                                                             capsys):
  out_onnx, out_hlo = tmp_path / "m.onnx", tmp_path / "m.stablehlo"
  assert cli.main(["export", "--format", "onnx", "-o", str(out_onnx)]) == 0
  assert "opset" not in capsys.readouterr().err
  assert cli.main(["export", "--format", "stablehlo", "-o",
                   str(out_hlo)]) == 0
  params, arch, _ = weights.load_weights("zerodce-default")
  x = np.random.default_rng(4).random((1, 23, 31, 3)).astype(np.float32)
  ref, _ = _jax(params, arch, x)
  np.save(tmp_path / "x.npy", x)
  # a fresh interpreter that never imports zerodce_jax (run from tmp_path,
  # so the checkout is not on its path either)
  proc = subprocess.run([sys.executable, "-c", _STANDALONE, str(out_hlo),
                         str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                        capture_output=True, text=True, timeout=300,
                        cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""})
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "cuda" in proc.stdout and "tpu" in proc.stdout
  np.testing.assert_allclose(np.load(tmp_path / "y.npy"), ref, rtol=0,
                             atol=1e-6)
  (got,) = _session(out_onnx.read_bytes()).run(None, {"image": x})
  np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("argv,match", [
    (["--format", "tflite"], "invalid choice: 'tflite'"),
    (["--format", "onnx", "--dtype", "bfloat16"], "float32 or float16"),
    (["--format", "onnx", "--weights", "missing.msgpack"], "missing.msgpack"),
    (["--format", "onnx", "--scale-factor", "4"], "Zero-DCE\\+\\+"),
])
def test_cli_export_errors_leave_nothing(tmp_path, capsys, argv, match):
  out = tmp_path / "out.onnx"
  assert cli.main(["export", "-o", str(out)] + argv) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "Traceback" not in err
  import re
  assert re.search(match, err), err
  assert list(tmp_path.iterdir()) == []


def test_write_is_atomic(tmp_path, monkeypatch):
  """A failure after the bytes are written (here: the final rename) leaves
  the previous file as it was and no temporary file behind."""
  target = tmp_path / "keep.onnx"
  target.write_bytes(b"previous")

  def failing_replace(src, dst):
    assert pathlib.Path(src).read_bytes() == b"new"
    raise OSError("No space left on device")

  monkeypatch.setattr(export.os, "replace", failing_replace)
  with pytest.raises(OSError):
    export.write_atomic(str(target), b"new")
  monkeypatch.undo()
  assert target.read_bytes() == b"previous"
  assert [p.name for p in tmp_path.iterdir()] == ["keep.onnx"]
  export.write_atomic(str(target), b"new")
  assert target.read_bytes() == b"new"


def _images(folder):
  rng = np.random.default_rng(5)
  folder.mkdir()
  dark = lambda *s: (rng.random(s) * 70).astype(np.uint8)  # noqa: E731
  Image.fromarray(dark(30, 41, 3)).save(folder / "rgb.png")
  Image.fromarray(dark(30, 41, 4), "RGBA").save(folder / "alpha.png")
  Image.fromarray(dark(25, 33)).save(folder / "grey.png")
  Image.fromarray(dark(40, 28, 3)).save(folder / "photo.jpg")
  import png
  with open(folder / "deep.png", "wb") as f:
    png.Writer(19, 17, bitdepth=16, greyscale=False).write(
        f, (rng.random((17, 57)) * 16000).astype(np.uint16))


def test_enhance_runtime_onnx_reproduces_enhance(tmp_path, capsys):
  """Same files, same formats (alpha, grey, 16-bit), within one grey level;
  tiled (tiny --max-megapixels) too."""
  src = tmp_path / "in"
  _images(src)
  model = tmp_path / "m.onnx"
  assert cli.main(["export", "--format", "onnx", "-o", str(model)]) == 0
  # the export is the plain model: the bundled default controls are off
  runs = {"jax": ["--plain"],
          "onnx": ["--runtime", "onnx", "--weights", str(model)],
          "tiled": ["--runtime", "onnx", "--weights", str(model),
                    "--max-megapixels", "0.0002", "--tile", "16"]}
  for name, extra in runs.items():
    assert cli.main(["enhance", str(src), "-o", str(tmp_path / name),
                     "--no-progress"] + extra) == 0, capsys.readouterr().err
  import png
  for f in sorted(p.name for p in src.iterdir()):
    def load(run):
      path = str(tmp_path / run / f)
      if f == "deep.png":
        w, h, rows, _ = png.Reader(filename=path).asDirect()
        return np.vstack([np.asarray(r, np.int64) for r in rows])
      return np.asarray(Image.open(path), np.int64)
    a = load("jax")
    assert Image.open(tmp_path / "onnx" / f).mode == Image.open(
        tmp_path / "jax" / f).mode
    for run in ("onnx", "tiled"):
      b = load(run)
      limit = 257 if f == "deep.png" else 1  # one 8-bit grey level
      assert a.shape == b.shape and np.abs(a - b).max() <= limit, (f, run)


def test_enhance_runtime_onnx_refuses_foreign_and_damaged_files(tmp_path,
                                                                capsys):
  img = tmp_path / "x.png"
  Image.new("RGB", (9, 9), (10, 10, 10)).save(img)
  damaged = tmp_path / "damaged.onnx"
  params, arch = _random_params("3-32-8")
  data = export.export_onnx(params, arch)
  damaged.write_bytes(data[:len(data) // 2])
  foreign = tmp_path / "foreign.onnx"
  m = onnx.load_from_string(data)
  del m.metadata_props[:]
  foreign.write_bytes(m.SerializeToString())
  garbage = tmp_path / "garbage.onnx"
  garbage.write_bytes(b"\x00" * 100)
  for path, match in [(damaged, "not a readable ONNX model"),
                      (garbage, "not a readable ONNX model"),
                      (foreign, "not an ONNX file made by `zerodce export`"),
                      (tmp_path / "none.onnx", "no such file")]:
    rc = cli.main(["enhance", str(img), "-o", str(tmp_path / "o"),
                   "--runtime", "onnx", "--weights", str(path)])
    err = capsys.readouterr().err
    assert rc == 2 and match in err and err.count("\n") == 1, err
  assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name,sf", [("zerodce", 1), ("zerodce++", 12)])
@pytest.mark.parametrize("strength", [0.5, 2.5])
def test_exported_strength_equals_the_live_control(name, sf, strength):
  """``zerodce export --strength S`` is ``zerodce enhance --strength S``:
  ONNX and StableHLO against the Enhancer's controlled path, highlights
  (protected by the shoulder) included."""
  from zerodce_jax.apps import enhance, quality
  params, arch = _random_params(name, seed=3)
  rng = np.random.default_rng(4)
  x = (rng.random((1, 48, 72, 3)) * 0.5).astype(np.float32)
  x[0, :12] = 0.93  # a bright band, where the shoulder works
  live = enhance.Enhancer(models.model_from_arch(arch, scale_factor=sf),
                          params, map_scale=1)([x[0]],
                                  controls=quality.Controls(
                                      strength=strength))[0]
  (got,) = _session(export.export_onnx(params, arch, scale_factor=sf,
                                       strength=strength)).run(
                                           None, {"image": x})
  # the live path runs the curves on planes (another rounding order: a
  # few 1e-5 at strength 2.5, a hundredth of an 8-bit level)
  np.testing.assert_allclose(got[0], live, atol=1e-4)
  exp = jax.export.deserialize(bytearray(export.export_stablehlo(
      params, arch, scale_factor=sf, strength=strength)))
  np.testing.assert_allclose(np.asarray(exp.call(x))[0], live, atol=1e-4)
  assert export.HIGHLIGHT_SHOULDER == quality.HIGHLIGHT_SHOULDER
  assert set(n.op_type for n in onnx.load_from_string(export.export_onnx(
      params, arch, scale_factor=sf, strength=strength)).graph.node) <= \
      export.ONNX_OPS
