"""Benchmark harness: timings that exclude compilation, FLOP counts, records.

Every timing blocks until the result is ready (``block_until_ready`` /
PyTorch's synchronous CPU ops) before the clock stops; the first call (JAX:
compilation) is timed separately as ``compile_s``; the figure is the median
of ``repeats`` runs. Records are dicts with at least: model, framework, task,
height, width, batch, dtype, device, threads, median_s, min_s, compile_s.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import statistics
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from zerodce_jax.core import losses, models
from zerodce_jax import training

__all__ = ["timeit", "flops_per_pixel", "model_flops", "machine_info",
           "bench_jax_infer", "bench_jax_train_step", "bench_torch_infer",
           "bench_torch_train_step", "bench_onnxruntime_infer", "TORCH_MODES",
           "onnxruntime_available", "peer_label", "bench_matmul_peak",
           "format_records",
           "write_json", "plot_records", "torch_available", "run",
           "official_params", "ratios"]


def compile_timed(jitted, *args) -> tuple[Any, float]:
  """Ahead-of-time compiles ``jitted`` for ``args``: ``(compiled, seconds)``."""
  t = time.perf_counter()
  compiled = jitted.lower(*args).compile()
  return compiled, time.perf_counter() - t


def timeit(fn: Callable[[], Any], *, repeats: int, warmup: int = 1
           ) -> tuple[float, float, float]:
  """``(median_s, min_s, first_call_s)`` of ``fn()`` (which must block)."""
  t = time.perf_counter()
  fn()
  first = time.perf_counter() - t
  for _ in range(max(0, warmup - 1)):
    fn()
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times), min(times), first


def flops_per_pixel(arch: dict[str, Any]) -> float:
  """Forward FLOPs (2 x multiply-adds) per pixel of the net's input."""
  total = 0
  depth, width, it = arch["depth"], arch["width"], arch["iterations"]
  out = 3 if arch["separable"] else 3 * it
  for k, src in enumerate(models.skip_sources(depth), start=1):
    cin = 3 if src == (0,) else width * len(src)
    cout = out if k == depth else width
    total += (9 * cin + cin * cout) if arch["separable"] else 9 * cin * cout
  return 2.0 * total


def model_flops(arch: dict[str, Any], height: int, width: int, *,
                scale_factor: int = 1) -> float:
  """Forward FLOPs of one image (the net runs at 1/scale_factor size); the
  curve iterations (~4 FLOPs x 3 channels x iterations per pixel) included."""
  hs, ws = height // scale_factor, width // scale_factor
  return (flops_per_pixel(arch) * hs * ws
          + 4 * 3 * arch["iterations"] * height * width)


def machine_info() -> dict[str, Any]:
  """CPU model, core count, JAX backend and device kind."""
  cpu = platform.processor() or ""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          cpu = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  dev = jax.devices()[0]
  return {"cpu": cpu, "cores": os.cpu_count(), "backend": dev.platform,
          "device_kind": dev.device_kind, "jax": jax.__version__,
          "date": time.strftime("%Y-%m-%d")}


def _record(**kw) -> dict[str, Any]:
  dev = jax.devices()[0]
  base = {"device": dev.platform if kw.get("framework") == "jax" else "cpu",
          "threads": os.cpu_count()}
  base.update(kw)
  px = base["height"] * base["width"] * base["batch"]
  base["images_per_s"] = base["batch"] / base["median_s"]
  base["megapixels_per_s"] = px / 1e6 / base["median_s"]
  return base


def _dtype(name: str):
  return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[name]


def _model(name: str, dtype: str, scale_factor: int):
  return models.model_from_arch(models.ARCHITECTURES[name], dtype=dtype,
                                scale_factor=scale_factor)


def _input(batch, h, w, seed=0):
  return np.random.default_rng(seed).random((batch, h, w, 3)).astype(
      np.float32) * 0.4


def bench_jax_infer(name: str, params, *, height: int, width: int,
                    batch: int = 1, dtype: str = "float32",
                    scale_factor: int = 1, repeats: int = 5,
                    return_output: bool = False):
  """Inference (net + curves) of a batch, jitted; with ``return_output``
  also the first enhanced image (NHWC float32)."""
  model = _model(name, dtype, scale_factor)
  x = jax.device_put(jnp.asarray(_input(batch, height, width), _dtype(dtype)))
  params = jax.device_put(params)
  fn, compile_s = compile_timed(
      jax.jit(lambda p, x: model.apply({"params": p}, x)[0]), params, x)
  med, mn, _ = timeit(lambda: fn(params, x).block_until_ready(),
                      repeats=repeats)
  flops = model_flops(models.ARCHITECTURES[name], height, width,
                      scale_factor=model.scale_factor) * batch
  rec = _record(model=_label(name, model.scale_factor), framework="jax",
                task="infer", height=height, width=width, batch=batch,
                dtype=dtype, median_s=med, min_s=mn, compile_s=compile_s,
                gflop=flops / 1e9, gflop_per_s=flops / 1e9 / med,
                ms_per_image=med / batch * 1e3)
  if return_output:
    return rec, np.asarray(fn(params, x)[:1], np.float32)
  return rec


def _label(name, scale_factor):
  return name if scale_factor == 1 else f"{name}(s={scale_factor})"


def _official_weights(name: str) -> dict[str, float]:
  """The official script's loss weights for ``name`` (Zero-DCE / ++)."""
  separable = models.ARCHITECTURES[name]["separable"]
  return dict(losses.OFFICIAL_PP_WEIGHTS if separable
              else losses.OFFICIAL_WEIGHTS)


def official_train_state(name: str, *, dtype: str = "float32"):
  """``(state, loss_fn)`` of the official recipe for ``name``: the official
  loss weights, Adam with clipping, a fresh initialisation (key 0)."""
  model = _model(name, dtype, 1)
  loss_fn = training.make_loss_fn(model, weights=_official_weights(name),
                                  color_eps=1e-8)
  return training.create_train_state(model, training.make_optimizer(),
                                     key=jax.random.key(0)), loss_fn


def bench_jax_train_step(name: str, *, height: int = 256, width: int = 256,
                         batch: int = 8, dtype: str = "float32",
                         devices: int = 1, repeats: int = 3) -> dict:
  """One official train step (forward, losses, backward, Adam), data-parallel
  over ``devices`` local devices (``training.make_parallel_step``)."""
  state, loss_fn = official_train_state(name, dtype=dtype)
  step = training.make_parallel_step(
      loss_fn, devices=jax.local_devices()[:devices])
  x = jnp.asarray(_input(batch, height, width).reshape(
      (devices, batch // devices, height, width, 3)))
  t = time.perf_counter()
  box = list(step(state, x))  # the first call compiles
  jax.block_until_ready(box)
  first = time.perf_counter() - t

  def run():
    box[0], m = step(box[0], x)
    jax.block_until_ready(m)

  med, mn, _ = timeit(run, repeats=repeats)
  flops = 3 * model_flops(models.ARCHITECTURES[name], height, width) * batch
  return _record(model=name, framework="jax", task="train_step",
                 height=height, width=width, batch=batch, dtype=dtype,
                 devices=devices, median_s=med, min_s=mn,
                 compile_s=max(0.0, first - med), gflop=flops / 1e9,
                 gflop_per_s=flops / 1e9 / med)


def torch_available() -> bool:
  try:
    import torch  # noqa: F401, PLC0415
    return True
  except ImportError:
    return False


TORCH_MODES = ("eager", "channels_last", "compile")


def bench_torch_infer(name: str, params, *, height: int, width: int,
                      batch: int = 1, scale_factor: int = 1,
                      flush_denormal: bool = False, mode: str = "eager",
                      dtype: str = "float32", device: str = "cpu",
                      repeats: int = 5, return_output: bool = False):
  """The official model (re-written in PyTorch) on the same input.

  Args:
    mode: ``"eager"`` (NCHW), ``"channels_last"`` (eager, NHWC memory
      format) or ``"compile"`` (``torch.compile``, default inductor, on
      channels_last; its compilation is timed apart as ``compile_s``).
    dtype: ``"bfloat16"`` runs under autocast.
    device: ``"cpu"`` (all cores; ``flush_denormal`` applies) or ``"cuda"``
      (synchronised).
    return_output: also return the first enhanced image, NHWC float32.
  """
  import torch  # noqa: PLC0415
  from benchmarks import torch_port as torch_reference  # noqa: PLC0415
  if mode not in TORCH_MODES:
    raise ValueError(f"mode must be one of {TORCH_MODES}, got {mode!r}")
  if device == "cpu":
    torch.set_num_threads(os.cpu_count())
    torch.set_flush_denormal(flush_denormal)
  arch = models.ARCHITECTURES[name]
  sf = scale_factor if arch["separable"] else 1
  net = torch_reference.from_params(params, arch,
                                    scale_factor=sf).eval().to(device)
  x = torch.from_numpy(_input(batch, height, width)).permute(0, 3, 1, 2)
  x = x.contiguous().to(device)
  if mode != "eager":
    net = net.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

  def call():
    with torch.no_grad():
      if dtype == "bfloat16":
        with torch.autocast(device, dtype=torch.bfloat16):
          y = net(x)[0]
      else:
        y = net(x)[0]
    sync()
    return y

  compile_s = 0.0
  try:
    if mode == "compile":
      t = time.perf_counter()
      net = torch.compile(net)
      call()
      compile_s = time.perf_counter() - t
    med, mn, _ = timeit(call, repeats=repeats, warmup=2)
    out = (call()[:1].float().permute(0, 2, 3, 1).cpu().numpy()
           if return_output else None)
  finally:
    torch.set_flush_denormal(False)
  rec = _record(model=_label(name, sf), framework="torch", task="infer",
                height=height, width=width, batch=batch, dtype=dtype,
                median_s=med, min_s=mn, compile_s=compile_s, mode=mode,
                flush_denormal=flush_denormal, torch=torch.__version__,
                threads=torch.get_num_threads(),
                ms_per_image=med / batch * 1e3)
  rec["device"] = device
  return (rec, out) if return_output else rec


def onnxruntime_available() -> bool:
  try:
    import onnx  # noqa: F401, PLC0415
    import onnxruntime  # noqa: F401, PLC0415
    return True
  except ImportError:
    return False


def bench_onnxruntime_infer(name: str, params, *, height: int, width: int,
                            batch: int = 1, scale_factor: int = 1,
                            repeats: int = 5) -> dict:
  """The same weights exported by ``zerodce export --format onnx`` (float32,
  dynamic axes), run by onnxruntime's CPU provider on all cores."""
  import onnxruntime as ort  # noqa: PLC0415
  from zerodce_jax.formats import export  # noqa: PLC0415
  arch = models.ARCHITECTURES[name]
  sf = scale_factor if arch["separable"] else 1
  options = ort.SessionOptions()
  options.intra_op_num_threads = os.cpu_count() or 1
  t = time.perf_counter()
  session = ort.InferenceSession(
      export.export_onnx(params, arch, scale_factor=sf), options,
      providers=["CPUExecutionProvider"])
  build_s = time.perf_counter() - t
  x = _input(batch, height, width)
  med, mn, _ = timeit(lambda: session.run(["enhanced"], {"image": x}),
                      repeats=repeats)
  return _record(model=_label(name, sf), framework="onnxruntime",
                 task="infer", height=height, width=width, batch=batch,
                 dtype="float32", median_s=med, min_s=mn, compile_s=build_s,
                 onnxruntime=ort.__version__,
                 threads=options.intra_op_num_threads)


def bench_torch_train_step(name: str, params, *, height: int = 256,
                           width: int = 256, batch: int = 8,
                           flush_denormal: bool = False,
                           dtype: str = "float32", device: str = "cpu",
                           mode: str = "eager", repeats: int = 3) -> dict:
  """Official train step in PyTorch: forward, losses, backward, clip, Adam,
  on ``device`` (``"cpu"``: all cores; ``"cuda"``: synchronised),
  ``"bfloat16"`` under autocast with the losses in float32.

  ``mode``: ``"eager"`` (NCHW), ``"channels_last"`` (eager, NHWC memory
  format) or ``"compile"`` (``torch.compile`` of forward + losses on
  channels_last, its backward compiled by AOTAutograd; gradient clipping and
  Adam stay eager; the first two steps are timed apart as ``compile_s``).
  """
  import torch  # noqa: PLC0415
  from benchmarks import torch_port as torch_reference  # noqa: PLC0415
  if device == "cpu":
    torch.set_num_threads(os.cpu_count())
    torch.set_flush_denormal(flush_denormal)
  arch = models.ARCHITECTURES[name]
  net = torch_reference.from_params(params, arch).to(device)
  opt = torch.optim.Adam(net.parameters(), lr=1e-4, weight_decay=1e-4)
  x = torch.from_numpy(_input(batch, height, width)).permute(0, 3, 1, 2)
  x = x.contiguous().to(device)
  if mode not in TORCH_MODES:
    raise ValueError(f"mode must be one of {TORCH_MODES}, got {mode!r}")
  if mode != "eager":
    net = net.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
  tv = _official_weights(name)["tv"]
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

  def loss_of(x):
    if dtype == "bfloat16":
      with torch.autocast(device, dtype=torch.bfloat16):
        enhanced, r = net(x)
      enhanced, r = enhanced.float(), r.float()
    else:
      enhanced, r = net(x)
    return torch_reference.official_loss(x, enhanced, r, tv_weight=tv)

  if mode == "compile":
    loss_of = torch.compile(loss_of)

  def run():
    loss = loss_of(x)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 0.1)
    opt.step()
    sync()

  compile_s = 0.0
  try:
    if mode == "compile":
      t = time.perf_counter()
      run()
      run()
      compile_s = time.perf_counter() - t
    med, mn, _ = timeit(run, repeats=repeats, warmup=2 if device != "cpu"
                        else 1)
  finally:
    torch.set_flush_denormal(False)
  rec = _record(model=name, framework="torch", task="train_step",
                height=height, width=width, batch=batch, dtype=dtype,
                median_s=med, min_s=mn, compile_s=compile_s,
                flush_denormal=flush_denormal, torch=torch.__version__,
                threads=torch.get_num_threads(), mode=mode)
  rec["device"] = device
  return rec


def bench_matmul_peak(*, n: int = 2048, dtype: str = "float32",
                      repeats: int = 5) -> dict:
  """The backend's achievable FLOP/s: a jitted ``n x n`` matrix product."""
  a = jnp.asarray(np.random.default_rng(0).random((n, n)), _dtype(dtype))
  f, compile_s = compile_timed(jax.jit(lambda a: a @ a), a)
  med, mn, _ = timeit(lambda: f(a).block_until_ready(), repeats=repeats)
  flops = 2.0 * n**3
  return {"task": "matmul_peak", "framework": "jax", "n": n, "dtype": dtype,
          "device": jax.devices()[0].platform, "threads": os.cpu_count(),
          "median_s": med, "min_s": mn, "compile_s": compile_s,
          "gflop_per_s": flops / 1e9 / med, "model": "matmul",
          "height": n, "width": n, "batch": 1}


def format_records(records: Sequence[dict]) -> str:
  """A terminal table of benchmark records."""
  cols = [("task", "{:<11}"), ("model", "{:<14}"), ("framework", "{:<6}"),
          ("mode", "{:<13}"), ("flush_denormal", "{!s:<6}"),
          ("height", "{:>5}"),
          ("width", "{:>5}"), ("batch", "{:>5}"), ("devices", "{:>3}"),
          ("dtype", "{:<8}"),
          ("median_s", "{:>10.4f}"), ("compile_s", "{:>9.2f}"),
          ("images_per_s", "{:>9.2f}"), ("gflop_per_s", "{:>8.1f}")]
  lines = ["  ".join(c for c, _ in cols)]
  for r in records:
    cells = []
    for c, f in cols:
      v = r.get(c, "")
      try:
        cells.append(f.format(v) if v != "" else "")
      except (ValueError, TypeError):
        cells.append(str(v))
    lines.append("  ".join(cells))
  return "\n".join(lines)


def write_json(records: Sequence[dict], path: str) -> None:
  """Writes ``{"machine": ..., "records": [...]}``."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump({"machine": machine_info(), "records": list(records)}, f,
              indent=2)


def _series_label(r: dict) -> str:
  torch_mode = ("" if r.get("flush_denormal") is None else
                (" flush-denormal" if r["flush_denormal"] else " default"))
  devices = f" {r['devices']} dev" if r.get("devices") else ""
  return f"{r['model']} {r['framework']}{torch_mode} {r['dtype']}{devices}"


def plot_records(records: Sequence[dict], path: str, *, title: str) -> bool:
  """Plots benchmark records with matplotlib (False if it is not installed).

  Several image sizes: time per image (ms, log) against megapixels (log),
  one line per model/framework/dtype at batch 1. Otherwise: a bar chart of
  the median time of each record.
  """
  try:
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
  except ImportError:
    return False
  sizes = {(r["height"], r["width"]) for r in records}
  if len(sizes) > 2:
    series: dict[str, list[tuple[float, float]]] = {}
    for r in records:
      if r["batch"] == 1:
        series.setdefault(_series_label(r), []).append(
            (r["height"] * r["width"] / 1e6, r["median_s"] * 1e3))
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for label, pts in sorted(series.items()):
      pts.sort()
      ax.plot(*zip(*pts), marker="o",
              linestyle="-" if " jax " in label else "--", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("megapixels per image")
    ax.set_ylabel("median time per image, batch 1 (ms, log)")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
  else:
    labels = [f"{_series_label(r)}\n{r['height']}x{r['width']} b{r['batch']}"
              for r in records]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(records)), 4.5))
    ax.bar(range(len(records)), [r["median_s"] * 1e3 for r in records],
           color=["tab:blue" if r["framework"] == "jax" else "tab:orange"
                  for r in records])
    ax.set_xticks(range(len(records)), labels, rotation=60, ha="right",
                  fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("median time (ms, log)")
  m = machine_info()
  ax.set_title(f"{title}\n{m['cpu']}, {m['cores']} cores, {m['backend']}, "
               f"{m['date']}", fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return True


def official_params(name: str, *, shared: str | None, flush: bool):
  """Official weights (converted) when ``shared`` has them, else random
  N(0, 0.02) weights of the same architecture (timings do not depend on the
  values, except through denormals: say which in the record)."""
  from zerodce_jax.formats import convert  # noqa: PLC0415
  fname = {"zerodce": "zerodce_official_epoch99.pth",
           "zerodce++": "zerodce_pp_official_epoch99.pth"}.get(name)
  if shared and fname and os.path.isfile(os.path.join(shared, "weights",
                                                      fname)):
    params, _, _ = convert.convert_official(
        os.path.join(shared, "weights", fname), flush=flush)
    return params, "official"
  model = models.make_model(name)
  return model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))[
      "params"], "random"


def run(*, model_names: Sequence[str] = ("zerodce", "zerodce++"),
        sizes: Sequence[tuple[int, int]] = ((900, 1200),),
        batches: Sequence[int] = (1,), dtypes: Sequence[str] = ("float32",),
        tasks: Sequence[str] = ("infer",), scale_factors: Sequence[int] = (
            1, 12), vs_torch: bool = False, vs_onnxruntime: bool = False,
        torch_flush_modes: Sequence[bool] = (False, True),
        torch_modes: Sequence[str] = TORCH_MODES, repeats: int = 5,
        train_size: int = 256, train_batch: int = 8,
        device_counts: Sequence[int] = (1,), shared: str | None = None,
        log: Callable[[str], None] = print) -> list[dict]:
  """Runs the requested benchmarks and returns their records.

  ``sizes`` are (height, width). ``tasks``: ``infer``, ``train_step``,
  ``roofline`` (matmul peak). Torch runs (``vs_torch``) use the official
  weights, in each of ``torch_modes`` (eager NCHW, eager ``channels_last``,
  ``torch.compile``), each as users run them (denormals kept, default CPU
  mode) and with ``torch.set_flush_denormal(True)`` (``torch_flush_modes``
  picks); onnxruntime runs
  (``vs_onnxruntime``, inference only) the same weights exported to ONNX.
  All JAX runs come first and all peer runs after them: a JAX run just after
  a PyTorch one was measured markedly slower (PyTorch's worker threads keep
  the cores busy a while).
  """
  records, torch_jobs = [], []

  def add(r):
    records.append(r)
    log(format_records([r]).splitlines()[-1])

  if vs_torch and not torch_available():
    log("torch is not installed: skipping the PyTorch side "
        "(pip install torch==2.13.0)")
    vs_torch = False
  if vs_onnxruntime and not onnxruntime_available():
    log("onnxruntime is not installed: skipping it "
        "(pip install 'zerodce-jax[export]')")
    vs_onnxruntime = False
  log(format_records([]))
  for name in model_names:
    params, origin = official_params(name, shared=shared, flush=True)
    raw = official_params(name, shared=shared, flush=False)[0]
    sfs = scale_factors if models.ARCHITECTURES[name]["separable"] else (1,)
    if "infer" in tasks:
      for (h0, w0) in sizes:
        for sf in sfs:
          # as the official Zero-DCE++ test script: crop to a multiple of s
          h, w = h0 - h0 % sf, w0 - w0 % sf
          if h < sf or w < sf:
            continue
          for b in batches:
            for dt in dtypes:
              r = bench_jax_infer(name, params, height=h, width=w, batch=b,
                                  dtype=dt, scale_factor=sf, repeats=repeats)
              add({**r, "weights": origin})
            if vs_torch:
              for mode in torch_modes:
                for ftz in torch_flush_modes:
                  torch_jobs.append((origin, functools.partial(
                      bench_torch_infer, name, raw, height=h, width=w,
                      batch=b, scale_factor=sf, flush_denormal=ftz,
                      mode=mode, repeats=repeats)))
            if vs_onnxruntime:
              torch_jobs.append((origin, functools.partial(
                  bench_onnxruntime_infer, name, params, height=h, width=w,
                  batch=b, scale_factor=sf, repeats=repeats)))
    if "train_step" in tasks:
      for d in device_counts:
        if d > jax.local_device_count() or train_batch % d:
          continue
        for dt in dtypes:
          add(bench_jax_train_step(name, height=train_size, width=train_size,
                                   batch=train_batch, dtype=dt, devices=d,
                                   repeats=max(1, repeats // 2)))
      if vs_torch:
        for mode in torch_modes:
          for ftz in torch_flush_modes:
            torch_jobs.append((origin, functools.partial(
                bench_torch_train_step, name, raw, height=train_size,
                width=train_size, batch=train_batch, flush_denormal=ftz,
                mode=mode, repeats=max(1, repeats // 2))))
  if "roofline" in tasks:
    for dt in dtypes:
      add(bench_matmul_peak(dtype=dt, repeats=repeats))
  for origin, job in torch_jobs:
    add({**job(), "weights": origin})
  return records


def peer_label(r: dict) -> str:
  """How a non-JAX record is named in tables: ``torch (default)``,
  ``torch channels_last (flush-denormal)``, ``torch compile (default)``,
  ``onnxruntime``."""
  if r["framework"] == "torch":
    mode = r.get("mode", "eager")
    name = "torch" if mode == "eager" else f"torch {mode}"
    return name + (" (flush-denormal)" if r.get("flush_denormal")
                   else " (default)")
  return r["framework"]


def ratios(records: Sequence[dict]) -> list[dict]:
  """Speed of JAX relative to the fastest peer run of the same work.

  One row per float32 JAX run (task, model, size, batch, devices) that has
  a peer (PyTorch in any mode, onnxruntime) counterpart:
  ``speedup_vs_best_peer`` = fastest peer median / JAX median (> 1: JAX is
  faster), ``best_peer`` its label; ``speedup_vs_best_torch`` likewise
  against PyTorch alone; ``torch_default_s`` / ``torch_ftz_s`` the fastest
  PyTorch mode without / with flush-denormal.
  """
  out = []
  key = lambda r: (r["task"], r["model"], r["height"], r["width"],
                   r["batch"])
  jax_runs = [r for r in records
              if r["framework"] == "jax" and r.get("dtype") == "float32"]
  for j in jax_runs:
    k = key(j)
    peers = [r for r in records if r["framework"] != "jax" and key(r) == k]
    if not peers:
      continue
    t = [r for r in peers if r["framework"] == "torch"]
    ort = [r for r in peers if r["framework"] == "onnxruntime"]
    default = sorted((r for r in t if not r.get("flush_denormal")),
                     key=lambda r: r["median_s"])
    ftz = sorted((r for r in t if r.get("flush_denormal")),
                 key=lambda r: r["median_s"])
    best = min(peers, key=lambda r: r["median_s"])
    best_t = min(t, key=lambda r: r["median_s"]) if t else None
    out.append({"task": k[0], "model": k[1], "height": k[2], "width": k[3],
                "batch": k[4], "devices": j.get("devices", 1),
                "jax_s": j["median_s"],
                "torch_default_s": default[0]["median_s"] if default else None,
                "torch_ftz_s": ftz[0]["median_s"] if ftz else None,
                "onnxruntime_s": ort[0]["median_s"] if ort else None,
                "best_peer": peer_label(best),
                "speedup_vs_best_peer": best["median_s"] / j["median_s"],
                "speedup_vs_best_torch": (best_t["median_s"] / j["median_s"]
                                          if best_t else None)})
  return out


def main_from_args(args) -> int:
  """``zerodce bench``: validates its parsed flags, runs, writes the JSON and
  prints the ratios. Returns the exit status."""
  import sys  # noqa: PLC0415
  from benchmarks import _common  # noqa: PLC0415

  def fail(msg):
    print(f"zerodce bench: {msg}", file=sys.stderr)
    return 2

  try:
    sizes = [tuple(int(v) for v in s.lower().split("x"))[::-1]
             for s in args.sizes.split(",")]
    if any(len(s) != 2 for s in sizes):
      raise ValueError
  except ValueError:
    return fail(f"--sizes wants WIDTHxHEIGHT[,...], got {args.sizes!r}")
  names = args.models.split(",")
  bad = [n for n in names if n not in ("zerodce", "zerodce++")]
  if bad:
    return fail(f"unknown models {bad} (zerodce, zerodce++)")
  modes = args.torch_modes.split(",")
  if not set(modes) <= set(TORCH_MODES):
    return fail(f"--torch-modes wants some of {','.join(TORCH_MODES)}, got "
                f"{args.torch_modes!r}")
  records = run(
      model_names=names, sizes=sizes, batches=[args.batch],
      torch_modes=modes,
      dtypes=args.dtype.split(","), tasks=args.tasks.split(","),
      scale_factors=[int(s) for s in args.scale_factors.split(",")],
      vs_torch=args.vs_torch, vs_onnxruntime=args.vs_onnxruntime,
      repeats=args.repeats, train_batch=args.train_batch,
      shared=str(args.shared or _common.shared_dir()),
      device_counts=sorted({1, args.devices or jax.local_device_count()}))
  write_json(records, args.json)
  for r in ratios(records):
    print(f"{r['task']} {r['model']} {r['width']}x{r['height']} "
          f"b{r['batch']} ({r['devices']} device(s)): JAX {r['jax_s']:.4f} s, "
          f"{r['speedup_vs_best_peer']:.2f}x the fastest peer "
          f"({r['best_peer']})")
  print(f"wrote {args.json}")
  return 0
