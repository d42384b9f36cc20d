"""The persistent compilation cache of the command line: a second run loads
what the first compiled; --no-cache turns it off; a damaged cache folder is
one warning and a normal run."""

import os
import subprocess
import sys

import pytest

from zerodce_jax.apps import compile_cache

pytestmark = pytest.mark.slow


def _run(tmp_path, cache, *extra, name="o"):
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT"))}
  env.update(ZERODCE_CACHE_DIR=str(cache), JAX_LOG_COMPILES="1")
  env.pop(compile_cache.NO_CACHE_ENV, None)
  out = tmp_path / name
  r = subprocess.run([sys.executable, "-m", "zerodce_jax", "enhance",
                      "--sample", "-o", str(out), "--no-progress", *extra],
                     capture_output=True, text=True, env=env, timeout=600)
  assert r.returncode == 0, r.stderr[-2000:]
  return r.stderr, (out / "sample_lowlight.jpg").read_bytes()


def _entries(cache):
  xla = cache / "xla"
  return sorted(p for p in xla.iterdir() if p.name.endswith("-cache")) \
      if xla.is_dir() else []


def _exported(cache):
  d = cache / compile_cache.EXPORT_DIR
  return sorted(d.glob("*.stablehlo")) if d.is_dir() else []


def _traced(err):
  """How many of this package's functions a run traced (JAX_LOG_COMPILES
  names them; a program loaded from the cache is traced as ``call``)."""
  return sum(err.count(f"Finished tracing {name} for jit")
             for name in ("fn", "run", "curve_strip"))


def test_second_run_loads_instead_of_compiling(tmp_path):
  cache = tmp_path / "cache"
  err1, out1 = _run(tmp_path, cache, name="a")
  hits1 = err1.count("Persistent compilation cache hit")  # the memory
  written = _entries(cache)                                # probe's shape
  assert len(written) >= 3  # the network, the analysis, the render
  err2, out2 = _run(tmp_path, cache, name="b")
  hits2 = err2.count("Persistent compilation cache hit")
  assert hits2 >= hits1 + 3, err2[-2000:]
  assert out2 == out1
  assert _entries(cache) == written  # nothing new to write
  # nor traced again: the traced programs come from cache/exported
  assert len(_exported(cache)) >= 3
  assert _traced(err1) >= 3 and _traced(err2) == 0, err2[-2000:]

  # --no-cache: nothing read, nothing written
  fresh = tmp_path / "fresh"
  err3, out3 = _run(tmp_path, fresh, "--no-cache", name="c")
  assert "Persistent compilation cache hit" not in err3
  assert not (fresh / "xla").exists()
  assert out3 == out1


def test_a_damaged_cache_is_one_warning_and_a_normal_run(tmp_path):
  cache = tmp_path / "cache"
  _, want = _run(tmp_path, cache, name="a")
  entries = _entries(cache)
  for p in entries:  # truncated, overwritten: as a crash or a disk leaves
    p.write_bytes(b"not a compiled program" if p != entries[0]
                  else p.read_bytes()[:40])
  programs = _exported(cache)
  for p in programs:  # the traced programs too: traced again, rewritten
    p.write_bytes(p.read_bytes()[:100])
  err, got = _run(tmp_path, cache, name="b")
  lines = [ln for ln in err.splitlines() if "damaged" in ln]
  assert len(lines) == 1 and str(len(entries)) in lines[0], err[-2000:]
  assert "Traceback" not in err
  assert got == want
  # compiled again and written back, whole (the memory probe's programs
  # only when the probe runs again: its result is kept in a file)
  again = _entries(cache)
  assert len(again) >= 3
  assert compile_cache._damaged(str(cache / "xla")) == []
  assert [p.stat().st_size > 100 for p in _exported(cache)] == [True] * len(
      programs)


def test_an_unusable_cache_folder_is_one_warning(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("a file where the cache folder would go")
  err, _ = _run(tmp_path, blocker, name="a")
  lines = [ln for ln in err.splitlines() if "compilation cache is off" in ln]
  assert len(lines) == 1, err[-2000:]


def test_exported_programs_are_keyed_by_shapes_and_core_constants(
    tmp_path, monkeypatch):
  """A traced program is loaded, not traced, by a fresh callable with the
  same key, shapes and constants; a core constant set by a script (as the
  quality benchmark's blotch sweep does) or a new shape traces anew."""
  import jax.numpy as jnp

  from zerodce_jax.core import denoise
  monkeypatch.setattr(compile_cache, "_enabled", str(tmp_path / "xla"))
  traced = []

  def exported(key):  # a new closure each time, as Enhancer's builders
    def f(x):
      traced.append(x.shape)
      return x * denoise.K_BLOTCH
    return compile_cache.exported(f, key)

  def programs():
    return sorted((tmp_path / compile_cache.EXPORT_DIR).glob("*.stablehlo"))

  k = denoise.K_BLOTCH
  assert float(exported("k")(jnp.ones(3))[0]) == k
  assert len(traced) == 1 and len(programs()) == 1
  # a new process would build a new callable: it loads, nothing is traced
  assert float(exported("k")(jnp.ones(3))[0]) == k
  assert len(traced) == 1
  monkeypatch.setattr(denoise, "K_BLOTCH", k + 3)
  assert float(exported("k")(jnp.ones(3))[0]) == k + 3
  assert len(traced) == 2 and len(programs()) == 2
  assert exported("k")(jnp.ones(4)).shape == (4,)
  assert len(traced) == 3 and len(programs()) == 3
  # a foreign program (another shape's, under this one's name) and a
  # damaged one are traced again and rewritten, not a crash
  by_time = sorted(programs(), key=lambda p: p.stat().st_mtime_ns)
  by_time[-1].write_bytes(by_time[0].read_bytes())  # the (3,) program
  assert float(exported("k")(jnp.ones(4))[0]) == k + 3
  assert len(traced) == 4
  for p in programs():
    p.write_bytes(b"\0" * 10)
  assert float(exported("k")(jnp.ones(4))[0]) == k + 3
  assert len(traced) == 5
