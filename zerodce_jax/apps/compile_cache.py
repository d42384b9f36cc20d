"""The persistent compilation cache: a second run loads what the first
compiled.

Every process that enhances compiles the same few functions (the network
on a canvas size, the noise estimate, the exposure plan, the render of a
strip). XLA's persistent cache (``jax_compilation_cache_dir``) keeps them
on disk, keyed by the program, the JAX version and the device, so the next
run of ``zerodce enhance`` (or ``eval``, ``serve``, an ``Enhancer``) skips
compiling them.

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

__all__ = ["cache_dir", "enable", "DEFAULT_MAX_BYTES", "NO_CACHE_ENV"]

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
