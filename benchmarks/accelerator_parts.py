"""One command for an accelerator (``benchmarks/accelerator.py``).

In order, each part writing its JSON under ``out`` before the next starts,
so a run cut off by its lease still leaves every finished part:

1. ``facts.json``: device, memory, versions, measured matmul peak (bf16,
   fp32).
2. ``infer.json``: inference (net + curves), synchronised, compile time
   apart: Zero-DCE and Zero-DCE++ (scale 1 and 12) at each size, batch and
   dtype; PyTorch on the same device as the peer (eager, ``channels_last``,
   ``torch.compile``), same weights and inputs, with the largest difference
   between their outputs.
3. ``train_step.json``: the official train step (losses + clipped Adam) at
   256x256 for each batch, both models, float32 and bfloat16, JAX vs
   PyTorch eager on the same device.
4. ``roofline.json``: achieved FLOP/s of every JAX record against the
   measured peak of its dtype.
5. ``recipe.json`` (+ ``<config>.msgpack`` weights): time to the official
   model, ``zerodce_official`` at its full recipe on a training folder
   (the device-side input pipeline), then ``zerodce_pp_official`` if time
   remains; each run stops at the time budget after a checkpoint.

Every part is time-boxed (configs left out are listed as skipped); an error
in one part is recorded and the next part still runs. ``quick`` shrinks
every size so the whole command runs in the test suite on a CPU.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import harness as bench
from zerodce_jax.core import models
from zerodce_jax.formats import atomic, image_io, weights as weights_lib
from zerodce_jax import training

__all__ = ["PLANS", "run", "device_facts", "equivalence"]

PLANS: dict[str, dict[str, Any]] = {
    "full": dict(
        matmul_n=8192, sizes=((900, 1200), (1080, 1920)), batches=(1, 8, 32),
        dtypes=("float32", "bfloat16"), infer_models=(
            ("zerodce", 1), ("zerodce++", 1), ("zerodce++", 12)),
        compile_peer=((900, 1200, 8),), train_models=("zerodce", "zerodce++"),
        train_batches=(8, 32, 128), train_size=256, repeats=6,
        torch_budget_s=150, infer_budget_s=100, train_budget_s=90,
        recipes=("zerodce_official", "zerodce_pp_official")),
    "quick": dict(
        matmul_n=256, sizes=((48, 72),), batches=(1,), dtypes=("float32",),
        infer_models=(("zerodce", 1), ("zerodce++", 12)), compile_peer=(),
        train_models=("zerodce++",), train_batches=(2,), train_size=32,
        repeats=1, torch_budget_s=60, infer_budget_s=60, train_budget_s=60,
        recipes=("zerodce_official",)),
}


def _write(out: str, name: str, doc: Any) -> None:
  path = os.path.join(out, name)
  atomic.write_bytes(path, json.dumps(doc, indent=1, default=str).encode())


def _torch():
  try:
    import torch  # noqa: PLC0415
  except ImportError:
    return None
  return torch


def _torch_device(torch) -> str:
  return "cuda" if torch.cuda.is_available() else "cpu"


def device_facts() -> dict[str, Any]:
  """Device name, memory, platform versions (JAX, CUDA via PyTorch)."""
  dev = jax.devices()[0]
  facts: dict[str, Any] = {**bench.machine_info(),
                           "devices": [str(d) for d in jax.devices()],
                           "device_count": jax.device_count()}
  try:
    stats = dev.memory_stats() or {}
    facts["memory_bytes"] = stats.get("bytes_limit")
  except Exception:  # noqa: BLE001 - not every backend reports memory
    facts["memory_bytes"] = None
  try:
    import jaxlib  # noqa: PLC0415
    facts["jaxlib"] = jaxlib.__version__
  except (ImportError, AttributeError):
    pass
  facts["jax_default_matmul_precision"] = str(
      jax.config.jax_default_matmul_precision)
  torch = _torch()
  if torch is not None:
    facts["torch_cudnn_allow_tf32"] = bool(torch.backends.cudnn.allow_tf32)
    facts["torch"] = torch.__version__
    facts["torch_cuda"] = torch.version.cuda
    if torch.cuda.is_available():
      facts["torch_device"] = torch.cuda.get_device_name(0)
  return facts


def _init_params(name: str):
  model = models.make_model(name, bias_init="torch")
  return model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))["params"]


def _infer_configs(plan):
  """``(group, name, scale, h, w, batch, dtype, label)``; ``group`` numbers
  the models, each of which gets an equal share of a part's time."""
  for g, (name, scale) in enumerate(plan["infer_models"]):
    for h, w in plan["sizes"]:
      for batch in plan["batches"]:
        for dtype in plan["dtypes"]:
          yield (g, name, scale, h, w, batch, dtype,
                 f"{name} s{scale} {w}x{h} b{batch} {dtype}")


def _train_configs(plan):
  for g, name in enumerate(plan["train_models"]):
    for batch in plan["train_batches"]:
      for dtype in plan["dtypes"]:
        yield g, name, batch, dtype, (f"{name} {plan['train_size']}x"
                                      f"{plan['train_size']} b{batch} "
                                      f"{dtype}")


def _share(start: float, budget: float, group: int, groups: int) -> float:
  """The deadline of ``group`` when ``groups`` share ``budget`` equally
  (time a group leaves unused passes to the next)."""
  return start + budget * (group + 1) / groups


def _torch_phase(plan, params, *, deadline: float, log) -> dict[str, Any]:
  """Every PyTorch run first (inference and train steps), so that its
  memory is handed back (``empty_cache``) before JAX takes the device."""
  torch = _torch()
  done: dict[str, Any] = {"infer": {}, "train_step": {}, "skipped": []}
  if torch is None:
    return done
  if torch.cuda.is_available():
    torch.backends.cudnn.benchmark = True
  start = time.time()
  groups = len(plan["infer_models"]) + 1   # + the train steps
  for g, name, scale, h, w, batch, dtype, label in _infer_configs(plan):
    modes = ["eager", "channels_last"]
    if (h, w, batch) in plan["compile_peer"] and dtype == "float32":
      modes.append("compile")
    for mode in modes:
      if time.time() > _share(start, deadline - start, g, groups):
        done["skipped"].append(f"torch-{mode} {label}")
        continue
      try:
        rec, out = bench.bench_torch_infer(
            name, params[name], height=h, width=w, batch=batch, dtype=dtype,
            scale_factor=scale, mode=mode, device=_torch_device(torch),
            repeats=plan["repeats"], return_output=True)
        done["infer"].setdefault(label, []).append((rec, out))
        log(f"infer torch-{mode} {label}: {rec['median_s'] * 1e3:.3f} ms")
      except Exception as e:  # noqa: BLE001 - recorded, next config
        done["infer"].setdefault(label, []).append((
            {"task": "infer", "framework": "torch", "mode": mode,
             "config": label, "error": repr(e)[:500]}, None))
        log(f"infer torch-{mode} {label}: {e!r}")
  for _, name, batch, dtype, label in _train_configs(plan):
    if time.time() > deadline:
      done["skipped"].append(f"torch train {label}")
      continue
    try:
      size = plan["train_size"]
      rec = bench.bench_torch_train_step(
          name, params[name], height=size, width=size, batch=batch,
          dtype=dtype, device=_torch_device(torch), repeats=plan["repeats"])
      log(f"train torch {label}: {rec['median_s'] * 1e3:.2f} ms")
    except Exception as e:  # noqa: BLE001 - recorded, next config
      rec = {"task": "train_step", "framework": "torch", "config": label,
             "error": repr(e)[:500]}
      log(f"train torch {label}: {e!r}")
    done["train_step"][label] = rec
  if torch.cuda.is_available():
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
  return done


def _infer_part(plan, params, peers, *, deadline: float, log) -> list[dict]:
  records, skipped = [], []
  start, groups = time.time(), len(plan["infer_models"])
  for g, name, scale, h, w, batch, dtype, label in _infer_configs(plan):
    if time.time() > _share(start, deadline - start, g, groups):
      skipped.append(label)
      continue
    try:
      rec, ref = bench.bench_jax_infer(
          name, params[name], height=h, width=w, batch=batch, dtype=dtype,
          scale_factor=scale, repeats=plan["repeats"], return_output=True)
      records.append(rec)
      log(f"infer jax {label}: {rec['median_s'] * 1e3:.3f} ms")
    except Exception as e:  # noqa: BLE001 - recorded, next config
      rec, ref = None, None
      records.append({"task": "infer", "framework": "jax", "config": label,
                      "error": repr(e)[:500]})
      log(f"infer jax {label}: {e!r}")
    for trec, tout in peers["infer"].get(label, []):
      if ref is not None and tout is not None:
        trec["max_abs_diff_vs_jax"] = float(np.abs(tout - ref).max())
      records.append(trec)
  if skipped or peers["skipped"]:
    records.append({"task": "infer", "skipped": skipped + [
        s for s in peers["skipped"] if "train" not in s],
                    "why": "time budget of the part"})
  return records


def _train_part(plan, peers, *, deadline: float, log) -> list[dict]:
  records, skipped = [], []
  size = plan["train_size"]
  start, groups = time.time(), len(plan["train_models"])
  for g, name, batch, dtype, label in _train_configs(plan):
    if time.time() > _share(start, deadline - start, g, groups):
      skipped.append(label)
    else:
      try:
        rec = bench.bench_jax_train_step(name, height=size, width=size,
                                         batch=batch, dtype=dtype,
                                         repeats=plan["repeats"])
        rec["images_per_s"] = batch / rec["median_s"]
        records.append(rec)
        log(f"train jax {label}: {rec['median_s'] * 1e3:.2f} ms")
      except Exception as e:  # noqa: BLE001 - recorded, next config
        records.append({"task": "train_step", "framework": "jax",
                        "config": label, "error": repr(e)[:500]})
        log(f"train jax {label}: {e!r}")
    if label in peers["train_step"]:
      records.append(peers["train_step"][label])
  if skipped or peers["skipped"]:
    records.append({"task": "train_step", "skipped": skipped + [
        s for s in peers["skipped"] if "train" in s],
                    "why": "time budget of the part"})
  return records


def _roofline(peaks: dict[str, float], records: list[dict]) -> list[dict]:
  out = []
  for r in records:
    if r.get("framework") != "jax" or "gflop_per_s" not in r:
      continue
    peak = peaks.get(r["dtype"])
    out.append({k: r[k] for k in ("model", "task", "height", "width", "batch",
                                  "dtype", "median_s", "gflop_per_s")}
               | {"peak_gflop_per_s": peak,
                  "fraction_of_peak": r["gflop_per_s"] / peak if peak
                  else None})
  return out


def _recipe_part(plan, *, out: str, data: str | None, deadline: float,
                 workroot: str, log) -> list[dict]:
  from zerodce_jax.training import config_utils  # noqa: PLC0415
  from zerodce_jax.formats import params_io  # noqa: PLC0415
  here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  records = []
  for name in plan["recipes"]:
    left = deadline - time.time()
    if left < 30:
      records.append({"config": name, "skipped": "no time left"})
      continue
    config = config_utils.load_config(os.path.join(here, "configs",
                                                   f"{name}.py"))
    overrides = [("data.pipeline", "device"), ("log_every", "250"),
                 ("checkpoint_every", "2500"), ("sample_every", "0"),
                 ("keep_checkpoints", "2")]
    if data:
      overrides += [("data.path", data), ("data.image_size", "256")]
    else:
      overrides += [("data.source", "synthetic"), ("data.image_size", "32"),
                    ("data.num_synthetic", "16"), ("num_steps", "4"),
                    ("log_every", "2"), ("loss.exposure_patch", "8")]
    config_utils.apply_overrides(config, overrides)
    workdir = os.path.join(workroot, name)
    t = time.time()
    state = training.train_and_evaluate(config, workdir, progress=False,
                                        time_limit_s=left - 20)
    wall = time.time() - t
    steps = int(state.step)
    total = (config.num_steps if config.num_steps > 0 else
             config.num_epochs * _steps_per_epoch(config, data))
    model = training.model_from_config(config)
    params_io.save_params(
        os.path.join(out, f"{name}.msgpack"), state.params,
        arch=params_io.arch_of(model),
        source=f"zerodce-jax {name} on {jax.devices()[0].device_kind}, "
        f"step {steps} of {total}, {wall:.0f} s")
    metrics = []
    mpath = os.path.join(workdir, "metrics.jsonl")
    if os.path.isfile(mpath):
      with open(mpath) as f:
        metrics = [json.loads(line) for line in f]
    rec = {"config": name, "steps": steps, "total_steps": total,
           "finished": steps >= total, "wall_s": wall,
           "overrides": dict(overrides),
           "steps_per_s": (metrics[-1]["images_per_s"] / config.batch_size
                           if metrics else None),
           "last_metrics": metrics[-1] if metrics else None,
           "loss_curve": [(m["step"], m["loss"]) for m in metrics]}
    records.append(rec)
    log(f"recipe {name}: {steps}/{total} steps in {wall:.0f} s")
    _write(out, "recipe.json", records)
  return records


def equivalence(weights: str, reference: str) -> list[dict]:
  """Largest difference from the official outputs on this device.

  ``reference``: an ``.npz`` with ``NAME/input`` and
  ``NAME/zerodce_enhanced`` (and optionally ``NAME/zerodce_pp_s12_enhanced``
  with ``weights`` a Zero-DCE++ file), HWC float32, as ``../shared``'s
  ``zerodce_official_crops.npz``. Runs at the default precision and at
  ``HIGHEST`` (float32 convolutions without TF32 on GPUs).
  """
  params, arch, _ = weights_lib.load_weights(weights)
  ref = np.load(reference, allow_pickle=False)
  key, scale = (("zerodce_pp_s12_enhanced", 12) if arch["separable"]
                else ("zerodce_enhanced", 1))
  model = models.DCENet(**arch, scale_factor=scale)
  out = []
  for precision in ("default", "highest"):
    with jax.default_matmul_precision(precision):
      fn = jax.jit(lambda p, x: model.apply({"params": p}, x)[0])
      for name in sorted({k.split("/")[0] for k in ref.files}):
        if f"{name}/{key}" not in ref.files:
          continue
        x = ref[f"{name}/input"][None].astype(np.float32)
        got = np.asarray(fn(params, x))[0]
        out.append({"image": name, "output": key, "precision": precision,
                    "max_abs_diff": float(np.abs(got - ref[f"{name}/{key}"])
                                          .max())})
  return out


def _steps_per_epoch(config, data: str | None) -> int:
  n = (len(image_io.list_images(data)) if data
       else config.data.num_synthetic)
  return n // config.batch_size


def run(out: str, *, plan: str = "full", data: str | None = None,
        budget_s: float = 470.0, workroot: str | None = None,
        check: list[tuple[str, str]] | None = None,
        log: Callable[[str], None] = print) -> dict[str, Any]:
  """Runs every part (module doc) into ``out``; returns their results.

  Args:
    out: output folder (created).
    plan: ``"full"`` (an accelerator) or ``"quick"`` (tiny sizes, CPU).
    data: training folder for the recipe part (e.g. made by ``zerodce data
      pack``); None: a few steps on synthetic images.
    budget_s: the whole command's time; the recipe part gets what the
      others leave.
    workroot: where training runs keep checkpoints (default ``out/runs``;
      point it elsewhere when ``out`` must stay small).
    check: ``(weights, reference_npz)`` pairs: also measure
      ``equivalence`` on this device (into ``facts.json``).
  """
  start = time.time()
  os.makedirs(out, exist_ok=True)
  cfg = PLANS[plan]
  results: dict[str, Any] = {}

  def part(name, fn):
    t = time.time()
    try:
      results[name] = fn()
    except Exception as e:  # noqa: BLE001 - recorded, next part runs
      results[name] = {"error": repr(e)[:1000],
                       "traceback": traceback.format_exc()[-4000:]}
      log(f"{name}: {e!r}")
    _write(out, f"{name}.json", results[name])
    log(f"part {name}: {time.time() - t:.1f} s")

  def facts():
    doc = {"facts": device_facts(), "plan": plan, "peaks": []}
    for dtype in ("bfloat16", "float32"):
      doc["peaks"].append(bench.bench_matmul_peak(n=cfg["matmul_n"],
                                                  dtype=dtype, repeats=10))
    if check:
      try:
        doc["equivalence"] = [r for w, npz in check
                              for r in equivalence(w, npz)]
      except Exception as e:  # noqa: BLE001 - recorded
        doc["equivalence"] = {"error": repr(e)[:500]}
    return doc

  part("facts", facts)
  params = {name: _init_params(name) for name in ("zerodce", "zerodce++")}
  t = time.time()
  try:
    peers = _torch_phase(cfg, params, log=log,
                         deadline=t + cfg["torch_budget_s"])
  except Exception as e:  # noqa: BLE001 - JAX parts still run
    log(f"torch peers: {e!r}")
    peers = {"infer": {}, "train_step": {}, "skipped": [],
             "error": repr(e)[:500]}
  log(f"part torch peers: {time.time() - t:.1f} s")
  part("infer", lambda: _infer_part(cfg, params, peers, log=log,
                                    deadline=time.time()
                                    + cfg["infer_budget_s"]))
  part("train_step", lambda: _train_part(cfg, peers, log=log,
                                         deadline=time.time()
                                         + cfg["train_budget_s"]))
  peaks = {}
  if isinstance(results.get("facts"), dict):
    peaks = {p["dtype"]: p["gflop_per_s"]
             for p in results["facts"].get("peaks", [])}
  part("roofline", lambda: _roofline(
      peaks, [r for k in ("infer", "train_step")
              if isinstance(results.get(k), list) for r in results[k]]))
  part("recipe", lambda: _recipe_part(
      cfg, out=out, data=data, deadline=start + budget_s,
      workroot=workroot or os.path.join(out, "runs"), log=log))
  results["wall_s"] = time.time() - start
  log(f"accelerator run done in {results['wall_s']:.0f} s")
  return results
