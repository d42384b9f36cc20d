"""The persistent compilation cache: a second run loads what the first
compiled.

Every process that enhances compiles the same few functions (the network
on a canvas size, the noise estimate, the exposure plan, the render of a
strip). XLA's persistent cache (``jax_compilation_cache_dir``) keeps them
on disk, keyed by the program, the JAX version and the device, so the next
run of ``zerodce enhance`` (or ``eval``, ``serve``, an ``Enhancer``) skips
compiling them.

* **Traced programs too** (``exported``): what a warm run would still do
  is trace the Python functions to find XLA's key; their traced programs
  are kept as ``jax.export`` artifacts (serialized StableHLO: data, not
  code) in ``cache_dir()/exported``, keyed by the package's source, the
  JAX version, the backend, ``zerodce_jax.core``'s constants and the
  argument shapes, so a warm run neither traces nor compiles.
* **Where**: ``cache_dir()/xla``, next to the memory probe:
  ``$ZERODCE_CACHE_DIR``, else ``$XDG_CACHE_HOME/zerodce-jax``, else
  ``~/.cache/zerodce-jax``.
* **Bounded**: at most ``$ZERODCE_CACHE_MAX`` (e.g. ``512M``; default
  ``DEFAULT_MAX_BYTES``), the least recently used entries evicted (JAX's
  own LRU, which needs the ``filelock`` package).
* **Off**: ``ZERODCE_NO_CACHE=1`` (what ``--no-cache`` sets), or a JAX
  cache the user configured already (theirs is left alone).
* **Damaged or foreign entries** are found before JAX reads them (each is
  decompressed, as JAX would): they are removed, with one warning line, and
  compiled again; an unusable folder is one warning and a run without the
  cache. Never a crash: the cache only ever saves time.
"""

from __future__ import annotations

import os
import sys

__all__ = ["cache_dir", "enable", "exported", "DEFAULT_MAX_BYTES",
           "NO_CACHE_ENV", "EXPORT_DIR"]

DEFAULT_MAX_BYTES = 512 * 2**20
NO_CACHE_ENV = "ZERODCE_NO_CACHE"
_enabled: str | None = None


def cache_dir() -> str:
  """The user's cache folder of this package (not created here)."""
  return os.environ.get("ZERODCE_CACHE_DIR") or os.path.join(
      os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
      "zerodce-jax")


def _max_bytes() -> int:
  text = os.environ.get("ZERODCE_CACHE_MAX", "").strip().lower()
  if not text:
    return DEFAULT_MAX_BYTES
  units = {"k": 2**10, "m": 2**20, "g": 2**30}
  try:
    return int(float(text[:-1] if text[-1:] in units else text)
               * units.get(text[-1:], 1))
  except ValueError:
    return DEFAULT_MAX_BYTES


def _damaged(path: str) -> list[str]:
  """The entries of ``path`` JAX could not read: not decompressible (a
  truncated or overwritten file), or too short to hold an executable."""
  try:
    from jax._src.compilation_cache import decompress_executable  # noqa: PLC0415
  except ImportError:  # another JAX layout: JAX's own warnings remain
    return []
  bad = []
  for name in os.listdir(path):
    if not name.endswith("-cache"):
      continue
    full = os.path.join(path, name)
    try:
      with open(full, "rb") as f:
        data = f.read()
      ok = len(decompress_executable(data)) > 4
    except Exception:  # noqa: BLE001 - any failure is a damaged entry
      ok = False
    if not ok:
      bad.append(full)
  return bad


def enable(path: str | None = None, *, warn=None) -> str | None:
  """Turns the persistent compilation cache on for this process.

  Args:
    path: the folder (default ``cache_dir()/xla``).
    warn: where the one-line warnings go (default: stderr).

  Returns:
    The folder in use, or None when the cache stays off
    (``ZERODCE_NO_CACHE``, a cache the user set up, an unusable folder).
  """
  global _enabled
  import jax  # noqa: PLC0415 - after the verbs' argument parsing
  warn = warn or (lambda m: print(m, file=sys.stderr))
  if os.environ.get(NO_CACHE_ENV, "") not in ("", "0"):
    return None
  if _enabled is not None:
    return _enabled
  current = jax.config.jax_compilation_cache_dir
  if current:  # the user's own (or a test session's): left alone
    return None
  path = path or os.path.join(cache_dir(), "xla")
  try:
    os.makedirs(path, exist_ok=True)
    if not os.access(path, os.W_OK | os.X_OK):
      raise PermissionError(f"{path} is not writable")
    bad = _damaged(path)
    for f in bad:
      os.remove(f)
  except OSError as e:
    warn(f"zerodce: the compilation cache is off ({e}); set "
         f"ZERODCE_CACHE_DIR to a writable folder, or {NO_CACHE_ENV}=1")
    return None
  if bad:
    warn(f"zerodce: removed {len(bad)} damaged entr"
         f"{'y' if len(bad) == 1 else 'ies'} from the compilation cache "
         f"({path}); compiling them again")
  try:
    import filelock  # noqa: F401, PLC0415 - JAX's LRU eviction needs it
    jax.config.update("jax_compilation_cache_max_size", _max_bytes())
  except ImportError:
    pass  # unbounded; the package depends on filelock, so rare
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
  try:  # a cache JAX looked for before (and found off) is looked for again
    from jax._src import compilation_cache  # noqa: PLC0415
    compilation_cache.reset_cache()
  except (ImportError, AttributeError):
    pass
  _enabled = path
  return path


# --------------------------------------------------- traced programs --
# XLA's cache saves compiling; what is left of a warm run is tracing the
# Python functions again to find the cache key. `exported` keeps the traced
# program too (jax.export's serialized StableHLO: data, never code), so a
# warm run deserializes it instead of tracing.
EXPORT_DIR = "exported"
_fingerprint: str | None = None


def _code_fingerprint() -> str:
  """The JAX version, backend and this package's source: what a traced
  program depends on besides its key."""
  global _fingerprint
  if _fingerprint is None:
    import hashlib  # noqa: PLC0415
    import jax  # noqa: PLC0415
    h = hashlib.sha256(f"{jax.__version__} {jax.default_backend()} "
                       f"{jax.devices()[0].device_kind}".encode())
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for d, dirs, files in sorted(os.walk(root)):
      dirs.sort()
      for name in sorted(files):
        if name.endswith(".py"):
          with open(os.path.join(d, name), "rb") as f:
            h.update(name.encode() + f.read())
    _fingerprint = h.hexdigest()
  return _fingerprint


def _constants() -> str:
  """The module-level constants of ``zerodce_jax.core`` as they are now
  (a research script may set one, e.g. ``denoise.K_BLOTCH``: the traced
  programs depend on them)."""
  out = []
  while True:  # another thread may import meanwhile: copy, else retry
    try:
      modules = sorted(dict(sys.modules).items())
      break
    except RuntimeError:
      continue
  for name, mod in modules:
    if not name.startswith("zerodce_jax.core.") or mod is None:
      continue
    for k, v in sorted(vars(mod).items()):
      if k.isupper() and isinstance(v, (int, float, str, bool, tuple)):
        out.append(f"{name}.{k}={v!r}")
  return "\n".join(out)


def exported(fn, key):
  """``jax.jit(fn)`` whose traced program is kept on disk per argument
  shapes (``cache_dir()/exported``) when the cache is on: a warm process
  loads it instead of tracing ``fn``. ``key`` must say everything ``fn``
  closes over (its static settings); the package's source, the JAX
  version, the backend and ``zerodce_jax.core``'s constants are added here.
  A damaged entry is removed and traced again; with the cache off this is
  ``jax.jit(fn)``."""
  import jax  # noqa: PLC0415
  jitted = jax.jit(fn)
  if _enabled is None:
    return jitted
  folder = os.path.join(os.path.dirname(_enabled), EXPORT_DIR)
  loaded: dict = {}

  def call(*args):
    leaves, tree = jax.tree_util.tree_flatten(args)
    sig = (str(tree), tuple((tuple(x.shape), str(x.dtype)) for x in leaves))
    f = loaded.get(sig)
    if f is None:
      f = loaded[sig] = _load_or_export(jitted, args, folder,
                                        repr((key, sig)))
    return f(*args)
  return call


def _load_or_export(jitted, args, folder, what):
  import hashlib  # noqa: PLC0415
  import tempfile  # noqa: PLC0415
  import jax  # noqa: PLC0415
  from jax import export  # noqa: PLC0415
  name = hashlib.sha256(f"{_code_fingerprint()}\n{_constants()}\n{what}"
                        .encode()).hexdigest()
  path = os.path.join(folder, name + ".stablehlo")
  try:
    with open(path, "rb") as f:
      exp = export.deserialize(bytearray(f.read()))
    leaves = jax.tree_util.tree_leaves(args)
    if [(a.shape, a.dtype) for a in exp.in_avals] != [
        (tuple(x.shape), x.dtype) for x in leaves]:
      raise ValueError("a foreign program")  # another key's: traced again
    return jax.jit(exp.call)
  except FileNotFoundError:
    pass
  except Exception:  # noqa: BLE001 - damaged: traced again, rewritten
    try:
      os.remove(path)
    except OSError:
      pass
  try:
    exp = export.export(jitted, platforms=[jax.default_backend()])(*args)
    data = exp.serialize()
  except Exception:  # noqa: BLE001 - not exportable: the plain jit
    return jitted
  try:
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    os.replace(tmp, path)
  except OSError:
    pass  # read-only or full: this run still uses it
  return jax.jit(exp.call)
