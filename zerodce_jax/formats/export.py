"""Deployable model files: ONNX and StableHLO (``zerodce export``).

Both formats hold the whole enhancement: an RGB batch ``[N, H, W, 3]``
(NHWC, float32 in [0, 1]) in, the enhanced batch out (curve iterations
included), optionally the curve maps (``[N, H, W, 3n]``, paper sign, in
[-1, 1]) as a second output. Zero-DCE++ with a scale factor down-scales and
up-scales inside the file (PyTorch-exact bilinear).

* **ONNX** (opset 17, standard domain only): the graph is generated from the
  same ``models.skip_sources`` and the params tree the Flax module uses, one
  node per operation: ``Transpose`` (NHWC <-> NCHW), ``Conv`` (3x3, pad 1;
  Zero-DCE++: grouped 3x3 then 1x1), ``Relu``, ``Tanh``, ``Concat``, the curve
  as ``Mul``/``Sub``/``Add``, ``Slice`` for each iteration's map, ``Resize``
  (+``Shape``) for the scale factor and ``Cast`` for float16. Nothing custom,
  so it converts onward (TFLite, Core ML, TensorRT). Batch, height and width
  are dynamic unless fixed. Metadata: the format tag, architecture, scale
  factor, layout, dtype, source weights and this package's version.
* **StableHLO**: ``jax.export`` of the Flax model with its params embedded,
  lowered for ``cpu``, ``cuda`` and ``tpu`` together, with symbolic batch,
  height and width unless fixed. ``jax.export.deserialize(bytes).call(x)``
  runs it without this package.

Float16 ONNX files keep a float32 interface: the input is cast to float16
after the (float32) down-scaling, and the outputs are cast back.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from zerodce_jax.core import curves, models
from zerodce_jax.formats import atomic

__all__ = ["export_onnx", "export_stablehlo", "write_atomic", "ExportError",
           "ONNX_OPSET", "ONNX_OPS", "ONNX_FORMAT_TAG", "FORMATS"]

ONNX_OPSET = 17
ONNX_FORMAT_TAG = "zerodce-jax-onnx"
# Every op a generated graph may use (a test checks the graphs use no other).
ONNX_OPS = frozenset({"Conv", "Relu", "Tanh", "Concat", "Mul", "Add", "Sub",
                      "Resize", "Transpose", "Slice", "Shape", "Cast",
                      "Clip"})
# The highlight shoulder an exported strength takes, as
# `apps.quality.HIGHLIGHT_SHOULDER` (a test checks they agree).
HIGHLIGHT_SHOULDER = (0.6, 0.97)
FORMATS = ("onnx", "stablehlo")
_DTYPES = {"onnx": ("float32", "float16"),
           "stablehlo": ("float32", "bfloat16", "float16")}


class ExportError(ValueError):
  """The export cannot be made as asked (the message says why)."""


def _version() -> str:
  from zerodce_jax import __version__  # noqa: PLC0415
  return __version__


def _check(fmt: str, arch: dict[str, Any], scale_factor: int, dtype: str,
           dims: dict[str, int | None], strength: float = 1.0) -> None:
  if not (np.isfinite(strength) and 0 <= strength <= 4):
    raise ExportError(f"--strength must be in [0, 4], got {strength}")
  if fmt not in FORMATS:
    raise ExportError(f"unknown format {fmt!r}; choose one of "
                      f"{', '.join(FORMATS)}")
  if dtype not in _DTYPES[fmt]:
    raise ExportError(f"{fmt} export supports dtype "
                      f"{' or '.join(_DTYPES[fmt])}, not {dtype!r}")
  if scale_factor < 1:
    raise ExportError(f"scale factor must be >= 1, got {scale_factor}")
  if scale_factor != 1 and not arch["separable"]:
    raise ExportError("--scale-factor applies to Zero-DCE++ weights only")
  for name, v in dims.items():
    if v is not None and v < 1:
      raise ExportError(f"--{name} must be positive, got {v}")
  for name in ("height", "width"):
    v = dims.get(name)
    if v is not None and v < scale_factor:
      raise ExportError(f"--{name} {v} is smaller than the scale factor "
                        f"{scale_factor}")


def metadata(arch: dict[str, Any], *, scale_factor: int, dtype: str,
             with_maps: bool, source: str,
             strength: float = 1.0) -> dict[str, str]:
  """What an exported file says about itself (ONNX ``metadata_props``)."""
  return {
      "format": ONNX_FORMAT_TAG,
      "arch": json.dumps({k: arch[k] for k in
                          ("depth", "width", "iterations", "separable")}),
      "scale_factor": str(scale_factor),
      "strength": repr(float(strength)),
      "dtype": dtype,
      "layout": "NHWC: input 'image' [N, H, W, 3] RGB float32 in [0, 1]; "
                "output 'enhanced' [N, H, W, 3] in [0, 1]"
                + ("; output 'maps' [N, H, W, 3n] curve maps (paper sign) in "
                   "[-1, 1]" if with_maps else ""),
      "with_maps": str(with_maps).lower(),
      "source_weights": source,
      "zerodce_jax_version": _version(),
  }


# ------------------------------------------------------------------ ONNX --
def _onnx_graph(params: Any, arch: dict[str, Any], *, scale_factor: int,
                dtype: str, dims: dict[str, int | None], with_maps: bool,
                strength: float = 1.0):
  import onnx  # noqa: PLC0415
  from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

  f16 = dtype == "float16"
  np_dt = np.float16 if f16 else np.float32
  nodes: list[Any] = []
  inits: list[Any] = []
  counter = [0]

  def name(prefix: str) -> str:
    counter[0] += 1
    return f"{prefix}_{counter[0]}"

  def const(prefix: str, value: np.ndarray) -> str:
    n = name(prefix)
    inits.append(numpy_helper.from_array(np.asarray(value), n))
    return n

  def node(op: str, inputs: list[str], **attrs) -> str:
    out = name(op.lower())
    nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
    return out

  def conv(x: str, kernel_hwio: np.ndarray, bias: np.ndarray, *,
           group: int = 1) -> str:
    k = np.transpose(np.asarray(kernel_hwio, np.float32), (3, 2, 0, 1))
    pad = (k.shape[-1] - 1) // 2
    return node("Conv", [x, const("w", k.astype(np_dt)),
                         const("b", np.asarray(bias, np_dt))],
                kernel_shape=list(k.shape[-2:]), pads=[pad] * 4,
                strides=[1, 1], group=group)

  image = "image"
  x32 = node("Transpose", [image], perm=[0, 3, 1, 2])  # NCHW float32
  s = scale_factor
  net_in = x32
  if s != 1:  # PyTorch F.interpolate(scale_factor=1/s, bilinear)
    net_in = node("Resize", [x32, "", const(
        "scales", np.array([1, 1, 1 / s, 1 / s], np.float32))],
                  mode="linear", coordinate_transformation_mode="half_pixel")
  if f16:
    net_in = node("Cast", [net_in], to=TensorProto.FLOAT16)
  acts = [net_in]
  depth = arch["depth"]
  for k, src in enumerate(models.skip_sources(depth), start=1):
    inp = acts[src[0]] if len(src) == 1 else node(
        "Concat", [acts[i] for i in src], axis=1)
    p = params[f"conv{k}"]
    if arch["separable"]:
      dw, pw = p["depthwise"], p["pointwise"]
      y = conv(inp, dw["kernel"], dw["bias"],
               group=int(np.shape(dw["kernel"])[-1]))
      y = conv(y, pw["kernel"], pw["bias"])
    else:
      y = conv(inp, p["kernel"], p["bias"])
    acts.append(node("Tanh" if k == depth else "Relu", [y]))
  maps = acts[-1]
  x = node("Cast", [x32], to=TensorProto.FLOAT16) if f16 else x32
  if s != 1:  # nn.UpsamplingBilinear2d to the input's size (align_corners)
    if f16:
      maps = node("Cast", [maps], to=TensorProto.FLOAT)
    maps = node("Resize", [maps, "", "", node("Shape", [x32])], mode="linear",
                coordinate_transformation_mode="align_corners")
    if f16:
      maps = node("Cast", [maps], to=TensorProto.FLOAT16)
  one = const("one", np.ones((), np_dt))
  if strength != 1:  # as core.curves.apply_at_strength, the shoulder below
    maps = node("Clip", [node("Mul", [maps, const("strength", np.asarray(
        strength, np_dt))]), const("minus_one", -np.ones((), np_dt)), one])
    knee, ceiling = HIGHLIGHT_SHOULDER
    inv_span = const("inv_span", np.asarray(1 / (ceiling - knee), np_dt))
    ceil_c = const("ceiling", np.asarray(ceiling, np_dt))
    zero = const("zero", np.zeros((), np_dt))
  n_maps = 1 if arch["separable"] else arch["iterations"]
  for i in range(arch["iterations"]):
    j = 0 if n_maps == 1 else i
    a = maps if n_maps == 1 else node(
        "Slice", [maps, const("starts", np.array([3 * j], np.int64)),
                  const("ends", np.array([3 * j + 3], np.int64)),
                  const("axes", np.array([1], np.int64))])
    if strength == 1:
      # LE(x) = x + a * x * (1 - x), in the order of curves.le_curve
      x = node("Add", [x, node("Mul", [node("Mul", [a, x]),
                                       node("Sub", [one, x])])])
    else:
      # x + (relu(a) w(x) + min(a, 0)) x (1 - x), w the highlight shoulder
      pos = node("Relu", [a])
      w = node("Clip", [node("Mul", [node("Sub", [ceil_c, x]), inv_span]),
                        zero, one])
      coef = node("Add", [node("Mul", [pos, w]), node("Sub", [a, pos])])
      x = node("Add", [x, node("Mul", [node("Mul", [coef, x]),
                                       node("Sub", [one, x])])])
  outputs = [("enhanced", x, 3)]
  if with_maps:
    outputs.append(("maps", maps, 3 * n_maps))
  out_infos = []
  for out_name, t, ch in outputs:
    if f16:
      t = node("Cast", [t], to=TensorProto.FLOAT)
    nodes.append(helper.make_node("Transpose", [t], [out_name],
                                  name=f"{out_name}_nhwc", perm=[0, 2, 3, 1]))
    out_infos.append(helper.make_tensor_value_info(
        out_name, TensorProto.FLOAT,
        [dims["batch"] or "batch", dims["height"] or "height",
         dims["width"] or "width", ch]))
  graph = helper.make_graph(
      nodes, "zerodce", [helper.make_tensor_value_info(
          image, TensorProto.FLOAT,
          [dims["batch"] or "batch", dims["height"] or "height",
           dims["width"] or "width", 3])], out_infos, initializer=inits)
  return onnx, helper, graph


def export_onnx(params: Any, arch: dict[str, Any], *, scale_factor: int = 1,
                dtype: str = "float32", height: int | None = None,
                width: int | None = None, batch: int | None = None,
                with_maps: bool = False, source: str = "",
                strength: float = 1.0) -> bytes:
  """An ONNX model of ``DCENet(**arch)`` with ``params`` (see module doc).

  Args:
    params: the flax params tree (``load_weights``).
    arch: ``depth, width, iterations, separable``.
    scale_factor: Zero-DCE++ only; the down/up-scaling is in the graph.
    dtype: ``float32`` or ``float16`` (weights and compute; the interface
      stays float32).
    height, width, batch: fixed sizes, or None for dynamic axes.
    with_maps: also output the curve maps.
    source: provenance stored in the metadata.
    strength: the curve strength baked into the graph
      (``core.curves.apply_at_strength`` with the highlight shoulder, as
      ``zerodce enhance --strength``); the maps output is then the maps at
      that strength. Exposure and denoising
      need a search over each image and are not exported.

  Returns:
    The serialised ``ModelProto`` (checked by ``onnx.checker``).

  Raises:
    ExportError: options that do not fit the weights or the format.
  """
  dims = {"batch": batch, "height": height, "width": width}
  _check("onnx", arch, scale_factor, dtype, dims, strength)
  onnx, helper, graph = _onnx_graph(params, arch, scale_factor=scale_factor,
                                    dtype=dtype, dims=dims,
                                    with_maps=with_maps, strength=strength)
  model = helper.make_model(
      graph, producer_name="zerodce-jax", producer_version=_version(),
      opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
      doc_string="Zero-DCE low-light enhancement: image [N, H, W, 3] RGB "
      "float32 in [0, 1] (NHWC) -> enhanced [N, H, W, 3].")
  model.ir_version = 8  # opset 17's IR; read by onnxruntime >= 1.14
  helper.set_model_props(model, metadata(
      arch, scale_factor=scale_factor, dtype=dtype, with_maps=with_maps,
      source=source, strength=strength))
  onnx.checker.check_model(model, full_check=True)
  return model.SerializeToString()


# ------------------------------------------------------------- StableHLO --
def export_stablehlo(params: Any, arch: dict[str, Any], *,
                     scale_factor: int = 1, dtype: str = "float32",
                     height: int | None = None, width: int | None = None,
                     batch: int | None = None, with_maps: bool = False,
                     platforms: tuple[str, ...] = ("cpu", "cuda", "tpu"),
                     strength: float = 1.0) -> bytes:
  """``jax.export`` of the model, params embedded (see module doc);
  ``strength`` as for ``export_onnx``.

  Returns:
    ``jax.export.Exported.serialize()`` bytes: a function of one float32
    ``[N, H, W, 3]`` array returning ``enhanced`` (float32), or
    ``(enhanced, maps)`` with ``with_maps``.
  """
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  dims = {"batch": batch, "height": height, "width": width}
  _check("stablehlo", arch, scale_factor, dtype, dims, strength)
  model = models.DCENet(**arch, scale_factor=scale_factor,
                        dtype=getattr(jnp, dtype))
  consts = jax.tree_util.tree_map(jnp.asarray, params)

  def fn(image):
    enhanced, maps = model.apply({"params": consts}, image)
    if strength != 1:
      x = image.astype(model.dtype)
      enhanced, _ = curves.apply_at_strength(
          x, maps, strength, iterations=arch["iterations"],
          shoulder=HIGHLIGHT_SHOULDER)
      maps = curves.scale_maps(maps, strength)
    enhanced = enhanced.astype(jnp.float32)
    return (enhanced, maps.astype(jnp.float32)) if with_maps else enhanced

  spec = ", ".join(str(v) if v else k for k, v in
                   (("b", batch), ("h", height), ("w", width)))
  constraints = [f"{d} >= {scale_factor}" for d, v in
                 (("h", height), ("w", width)) if not v]
  shape = jax.export.symbolic_shape(f"{spec}, 3", constraints=constraints)
  try:
    exp = jax.export.export(jax.jit(fn), platforms=platforms)(
        jax.ShapeDtypeStruct(shape, jnp.float32))
  except Exception as e:  # noqa: BLE001 - shape-polymorphism limits
    raise ExportError(f"cannot export with these shapes ({type(e).__name__}:"
                      f" {str(e).splitlines()[0][:300]}); try fixed "
                      "--height/--width") from None
  return bytes(exp.serialize())


def write_atomic(path: str, data: bytes) -> None:
  """Writes ``data`` to ``path`` (folders created) atomically: a failure
  never leaves a partial file under ``path``."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  atomic.write_bytes(path, data)
