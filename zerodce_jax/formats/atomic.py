"""Atomic file writes: a file appears complete under its name or not at all.

Every writer of the package (images, weights, exports, videos, packed
training sets) writes to a temporary file beside the target and renames it
into place (``os.replace``, atomic on POSIX and Windows within one folder);
on any failure the temporary file is removed and the target is untouched.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

__all__ = ["atomic_path", "write_bytes"]


@contextlib.contextmanager
def atomic_path(path: str, *, suffix: str = "") -> Iterator[str]:
  """Yields a temporary path beside ``path``; renames it to ``path`` when
  the block ends without an exception, removes it otherwise.

  Args:
    path: the file to create or replace.
    suffix: appended to the temporary name (e.g. ``".mp4"`` for writers
      that pick the format from the extension).
  """
  folder = os.path.dirname(path) or "."
  tmp = os.path.join(folder,
                     f".{os.path.basename(path)}.tmp-{os.getpid()}{suffix}")
  try:
    yield tmp
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise


def write_bytes(path: str, data: bytes) -> None:
  """Writes ``data`` to ``path`` atomically."""
  with atomic_path(path) as tmp, open(tmp, "wb") as f:
    f.write(data)
