"""Official PyTorch Zero-DCE / Zero-DCE++ snapshots -> zerodce-jax params.

What the conversion does (no torch needed; see ``torch_pickle``):
  * reads ``e_conv{k}.weight|bias`` (Zero-DCE) or
    ``e_conv{k}.depth_conv|point_conv.weight|bias`` (Zero-DCE++);
  * OIHW -> HWIO kernels (depthwise: ``[C, 1, 3, 3]`` -> ``[3, 3, 1, C]``);
  * curve sign: the official net outputs ``r`` and computes
    ``x + r * (x**2 - x)``, i.e. the paper's ``a = -r``. Since ``tanh`` is odd,
    negating the last layer's weights and bias turns ``r`` into ``a`` exactly;
  * denormal floats (``0 < |w| < 1.18e-38``; about 24% of the official Zero-DCE
    weights) are flushed to zero. This changes no output by more than about
    1e-30 and keeps CPUs without flush-to-zero from running many times slower.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from zerodce_jax.formats import params_io, torch_pickle

__all__ = ["convert_state_dict", "convert_official", "flush_denormals",
           "official_layer_names"]

_TINY = np.finfo(np.float32).tiny


def flush_denormals(x: np.ndarray) -> tuple[np.ndarray, int]:
  """Sets subnormal float32 values to 0; returns ``(array, count_flushed)``."""
  x = np.asarray(x, np.float32)
  mask = (x != 0) & (np.abs(x) < _TINY)
  return np.where(mask, np.float32(0), x), int(mask.sum())


def _hwio(w: np.ndarray) -> np.ndarray:
  return np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)))


def official_layer_names(state: dict[str, np.ndarray]) -> tuple[int, bool]:
  """Infers ``(depth, separable)`` from official state-dict keys."""
  layers = {int(m.group(1)) for k in state
            if (m := re.match(r"e_conv(\d+)\.", k))}
  if not layers:
    raise ValueError("no e_convN layers: not an official Zero-DCE snapshot")
  separable = any(".depth_conv." in k for k in state)
  return max(layers), separable


def convert_state_dict(state: dict[str, np.ndarray], *,
                       arch: str | None = None,
                       flush: bool = True) -> tuple[dict[str, Any],
                                                    dict[str, Any], int]:
  """Maps an official state dict to a flax params tree.

  Args:
    state: ``name -> array`` in PyTorch layout (``torch_pickle.load_state_dict``).
    arch: ``"zerodce"`` or ``"zerodce++"`` to check the snapshot against, or
      ``None`` to infer it from the keys.
    flush: flush denormal floats to zero.

  Returns:
    ``(params, arch_fields, n_flushed)`` where ``arch_fields`` holds
    ``depth, width, iterations, separable``.

  Raises:
    ValueError: the snapshot is not of the requested architecture.
  """
  depth, separable = official_layer_names(state)
  if depth > 99:
    raise ValueError(f"snapshot names layer e_conv{depth}: not a DCE-Net")
  found = "zerodce++" if separable else "zerodce"
  if arch is not None and arch != found:
    raise ValueError(f"snapshot is a {found} network, not {arch}")
  params: dict[str, Any] = {}
  flushed = 0

  def take(key):
    nonlocal flushed
    if key not in state:
      raise ValueError(f"snapshot lacks {key}")
    arr = np.asarray(state[key], np.float32)
    ndim = 1 if key.endswith(".bias") else 4
    if arr.ndim != ndim:
      raise ValueError(f"snapshot's {key} has shape {arr.shape}, not a "
                       f"{ndim}-d {'bias' if ndim == 1 else 'kernel'}")
    if flush:
      arr, n = flush_denormals(arr)
      flushed += n
    return arr

  for k in range(1, depth + 1):
    sign = np.float32(-1.0 if k == depth else 1.0)
    if separable:
      dw, db = take(f"e_conv{k}.depth_conv.weight"), take(
          f"e_conv{k}.depth_conv.bias")
      pw, pb = take(f"e_conv{k}.point_conv.weight"), take(
          f"e_conv{k}.point_conv.bias")
      params[f"conv{k}"] = {
          "depthwise": {"kernel": _hwio(dw), "bias": db},
          "pointwise": {"kernel": sign * _hwio(pw), "bias": sign * pb},
      }
    else:
      w, b = take(f"e_conv{k}.weight"), take(f"e_conv{k}.bias")
      params[f"conv{k}"] = {"kernel": sign * _hwio(w), "bias": sign * b}
  last = params[f"conv{depth}"]
  out_ch = (last["pointwise"] if separable else last)["bias"].shape[0]
  width = params["conv1"]["pointwise" if separable else "kernel"]
  width = (width["kernel"] if separable else width).shape[-1]
  iterations = 8 if separable else out_ch // 3
  fields = dict(depth=depth, width=int(width), iterations=int(iterations),
                separable=separable)
  try:  # the snapshot is untrusted: every shape must fit the architecture
    fields = params_io.check_arch(fields)
    params = params_io.check_params(params, fields)
  except params_io.WeightsError as e:
    raise ValueError(f"snapshot is not a valid DCE-Net: {e}") from None
  extra = sorted(k for k in state if not _is_used(k, depth, separable))
  if extra:
    raise ValueError(f"snapshot holds tensors no DCE-Net has: {extra[:4]}")
  return params, fields, flushed


def _is_used(key: str, depth: int, separable: bool) -> bool:
  m = re.fullmatch(r"e_conv(\d+)\.(depth_conv\.|point_conv\.)?(weight|bias)",
                   key)
  return bool(m) and 1 <= int(m.group(1)) <= depth and (
      bool(m.group(2)) == separable)


def convert_official(path: str, *, arch: str | None = None,
                     flush: bool = True):
  """Reads an official ``.pth`` snapshot and converts it (see module doc).

  Returns:
    ``(params, arch_fields, n_flushed)``.

  Raises:
    FileNotFoundError: no such file.
    torch_pickle.CheckpointFormatError: unreadable or hostile file (nothing
      in it is executed).
    ValueError: a readable snapshot that is not a valid DCE-Net (or not of
      ``arch``). Every message starts with ``path``.
  """
  state = torch_pickle.load_state_dict(path)
  try:
    return convert_state_dict(state, arch=arch, flush=flush)
  except ValueError as e:
    raise ValueError(f"{path}: {e}") from None
