"""Where the time goes: per-op times from a ``jax.profiler`` trace, and the
network's convolution layers timed one by one with each algorithm of
``conv_candidates`` (and, for training, each gradient), as GFLOP/s.

Used by ``benchmarks/op_profile.py``; measured figures live in README and
``benchmarks/results/``.
"""

from __future__ import annotations

import collections
import glob
import os
import re
import tempfile
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import harness as bench, conv_candidates
from zerodce_jax.core import kernels, models

__all__ = ["op_profile", "time_by_kind", "conv_layers", "time_conv_layers",
           "op_kind"]


def op_kind(opcode: str, name: str = "") -> str:
  """Coarse kind of an XLA op from its HLO opcode (and name): ``library``
  (a fusion XLA:CPU hands to a kernel library, YNNPACK / XNNPACK / oneDNN:
  its convolutions and matrix products, named ``ynn_fusion...``),
  ``convolution``, ``dot``, ``while`` (a loop, e.g. a ``lax.scan``),
  ``fusion`` (fused elementwise/reduction work) or ``other`` (copies, pads,
  slices...)."""
  if re.match(r"(ynn|xnn|onednn)_fusion", name):
    return "library"
  opcode = opcode.lower()
  for kind in ("convolution", "dot", "while", "fusion"):
    if kind in opcode:
      return kind
  return "other"


def op_profile(fn: Callable, *args: Any, repeats: int = 3) -> list[dict]:
  """Per-op time of the compiled ``fn(*args)`` from a ``jax.profiler``
  trace (XLA:CPU's host plane), one entry per HLO op.

  ``fn`` is compiled and run once first (not traced), then ``repeats``
  calls are traced. Returns entries sorted by time: ``op`` (HLO name),
  ``opcode``, ``kind`` (``op_kind``), ``s_per_call`` and
  ``share`` of the total of all ops but loops (a ``while`` loop's time is
  also counted in the ops of its body, so it is reported with its share
  of that total but left out of the total).
  """
  compiled = jax.jit(fn).lower(*args).compile()
  jax.block_until_ready(compiled(*args))
  with tempfile.TemporaryDirectory() as tmp:
    with jax.profiler.trace(tmp):
      for _ in range(repeats):
        jax.block_until_ready(compiled(*args))
    data = _load_xspace(tmp)
  opcodes = _hlo_opcodes(compiled)
  totals = collections.defaultdict(float)
  for plane in data.planes:
    for line in plane.lines:
      for event in line.events:
        if event.name in opcodes:
          totals[event.name] += event.duration_ns * 1e-9
  kinds = {n: op_kind(opcodes[n], n) for n in totals}
  whole = sum(t for n, t in totals.items() if kinds[n] != "while") or 1.0
  rows = [{"op": n, "opcode": opcodes[n], "kind": kinds[n],
           "s_per_call": t / repeats, "share": t / whole}
          for n, t in totals.items()]
  return sorted(rows, key=lambda r: -r["s_per_call"])


def time_by_kind(rows: Sequence[dict]) -> dict[str, float]:
  """Seconds per call by ``kind`` from ``op_profile`` rows, largest first,
  loops left out (their time is in their body's ops)."""
  kinds: dict[str, float] = {}
  for r in rows:
    if r["kind"] != "while":
      kinds[r["kind"]] = kinds.get(r["kind"], 0.0) + r["s_per_call"]
  return dict(sorted(kinds.items(), key=lambda kv: -kv[1]))


def _load_xspace(folder: str):
  paths = glob.glob(os.path.join(folder, "**", "*.xplane.pb"),
                    recursive=True)
  if not paths:
    raise RuntimeError(f"jax.profiler wrote no trace under {folder}")
  return jax.profiler.ProfileData.from_file(paths[0])


def _hlo_opcodes(compiled) -> dict[str, str]:
  """``{instruction name: opcode}`` of the compiled module's HLO text."""
  return dict(re.findall(
      r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(?:\([^=]*?\)|\S+)\s+"
      r"([\w\-]+)\(", compiled.as_text(), flags=re.MULTILINE))


def conv_layers(arch: dict[str, Any]) -> list[dict[str, Any]]:
  """The 3x3 convolutions of a plain (not separable) DCE-Net architecture:
  ``layer`` (1-based), ``cin``, ``cout`` and ``concat`` (its input is a
  skip concatenation)."""
  if arch.get("separable"):
    raise ValueError("conv_layers: separable architectures have no dense "
                     "3x3 convolutions")
  depth, width = arch.get("depth", 7), arch.get("width", 32)
  maps = 3 * arch.get("iterations", 8)
  chans = [3] + [width] * (depth - 1)
  return [{"layer": k, "cin": sum(chans[i] for i in src),
           "cout": maps if k == depth else width, "concat": len(src) > 1}
          for k, src in enumerate(models.skip_sources(depth), start=1)]


def _gradients(kind: str) -> Callable:
  if kind == "input_grad":
    return lambda x, k, g: jax.vjp(lambda a: conv_candidates.xla(a, k),
                                   x)[1](g)[0]
  if kind == "kernel_grad_xla":
    return lambda x, k, g: jax.vjp(lambda b: conv_candidates.xla(x, b),
                                   k)[1](g)[0]
  if kind == "kernel_grad_scan":
    return lambda x, k, g: kernels.conv3x3_kernel_grad(x, g)
  raise ValueError(f"unknown gradient {kind!r}")


GRADIENTS = ("input_grad", "kernel_grad_xla", "kernel_grad_scan")


def time_conv_layers(arch: dict[str, Any], *, height: int, width: int,
                     batch: int = 1,
                     candidates: Sequence[str] = tuple(
                         conv_candidates.CANDIDATES),
                     gradients: Sequence[str] = (),
                     repeats: int = 3) -> list[dict]:
  """Times each convolution layer of ``arch`` alone on random data.

  Args:
    arch: a ``models.ARCHITECTURES`` entry (plain convolutions).
    height, width, batch: the activations' size.
    candidates: forward algorithms (``conv_candidates.CANDIDATES`` keys);
      ``split_concat`` is timed on concatenation layers only,
      ``multiply_adds`` on layers with up to ``kernels.TAPS_MAX_CHANNELS``
      input channels only.
    gradients: any of ``GRADIENTS`` (input gradient; kernel gradient by
      XLA or by ``kernels.conv3x3_kernel_grad``).
    repeats: timed calls per entry (median).

  Returns:
    One record per (layer, algorithm): ``layer``, ``cin``, ``cout``,
    ``algorithm``, ``median_s``, ``gflop`` (direct-convolution FLOPs, the
    same for every algorithm, so GFLOP/s compare speed), ``gflop_per_s``,
    ``max_abs_diff`` from XLA's result (forward algorithms).
  """
  rng = np.random.default_rng(0)
  out = []
  for layer in conv_layers(arch):
    cin, cout = layer["cin"], layer["cout"]
    x = jnp.asarray(rng.random((batch, height, width, cin), np.float32))
    k = jnp.asarray(rng.normal(0, 0.05, (3, 3, cin, cout)).astype(np.float32))
    g = jnp.asarray(rng.normal(0, 1, (batch, height, width, cout))
                    .astype(np.float32))
    gflop = 2 * 9 * cin * cout * batch * height * width / 1e9
    ref = jax.jit(conv_candidates.xla)(x, k)
    jobs = [(c, conv_candidates.CANDIDATES[c], (x, k)) for c in candidates
            if (c != "split_concat" or layer["concat"]) and
            (c != "multiply_adds" or cin <= kernels.TAPS_MAX_CHANNELS)]
    jobs += [(gname, _gradients(gname), (x, k, g)) for gname in gradients]
    for name, fn, args in jobs:
      compiled, _ = bench.compile_timed(jax.jit(fn), *args)
      y = compiled(*args)
      med, _, _ = bench.timeit(
          lambda c=compiled, a=args: jax.block_until_ready(c(*a)),
          repeats=repeats)
      diff = (float(jnp.max(jnp.abs(y - ref)))
              if name in conv_candidates.CANDIDATES else None)
      out.append({**layer, "algorithm": name, "height": height,
                  "width": width, "batch": batch, "median_s": med,
                  "gflop": gflop, "gflop_per_s": gflop / med,
                  "max_abs_diff": diff})
  return out
