"""Face-box label files of the DARK FACE layout, read and checked.

A label file is plain text: the first line is the number of faces ``N``,
then ``N`` lines ``x1 y1 x2 y2``, pixel coordinates of the box corners,
inclusive (a box covers the pixels ``x1..x2`` by ``y1..y2``). Each file
belongs to one image, whose size bounds the boxes. One reader serves the
TFDS builder (``training.datasets.dark_face``) and ``zerodce eval --faces``
(``apps.faces``), so both accept and refuse the same files.

Every problem is one ``LabelError`` line that names the file (and the line):
an empty file, a count that is not a non-negative integer, a box line without
exactly four finite numbers, a negative coordinate, ``x2 < x1`` or
``y2 < y1``, a box outside the image, a count that disagrees with the lines.
One pixel of slack past the last column and row (``x2 <= width``,
``y2 <= height``) is accepted: annotation tools that write exclusive ends
produce it, and it is clipped when boxes are compared.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["LabelError", "read_face_labels", "parse_face_labels"]


class LabelError(ValueError):
  """A malformed label file; the message names the file and the line."""


def _number(text: str, where: str) -> float:
  try:
    value = float(text)
  except ValueError:
    raise LabelError(f"{where}: {text[:20]!r} is not a number") from None
  if not math.isfinite(value):
    raise LabelError(f"{where}: {text[:20]!r} is not a finite number")
  return value


def parse_face_labels(text: str, *, name: str, width: int,
                      height: int) -> np.ndarray:
  """The boxes of a label file's ``text`` (``name``: the file, for errors).

  Args:
    text: the file's content.
    name: how errors name the file (its path).
    width: the image's width in pixels.
    height: the image's height in pixels.

  Returns:
    ``[N, 4]`` float64 ``(x1, y1, x2, y2)``, inclusive pixel coordinates, in
    the file's order (``[0, 4]`` for a file that says 0 faces).

  Raises:
    LabelError: the file is malformed (one line naming ``name``).
  """
  lines = [(i + 1, line.split()) for i, line in enumerate(text.splitlines())
           if line.strip()]
  if not lines:
    raise LabelError(f"{name}: empty label file (wants the number of faces "
                     "on the first line, then one 'x1 y1 x2 y2' line each)")
  first_no, first = lines[0]
  if len(first) != 1 or not first[0].isdigit():
    raise LabelError(f"{name}: line {first_no}: {' '.join(first)[:40]!r} is "
                     "not a number of faces")
  n = int(first[0])
  rows = lines[1:]
  if len(rows) != n:
    raise LabelError(f"{name}: says {n} faces, lists {len(rows)}")
  boxes = np.zeros((n, 4), np.float64)
  for k, (no, parts) in enumerate(rows):
    where = f"{name}: line {no}"
    if len(parts) != 4:
      raise LabelError(f"{where}: {len(parts)} values, wants 4 (x1 y1 x2 y2)")
    x1, y1, x2, y2 = (_number(p, where) for p in parts)
    if min(x1, y1, x2, y2) < 0:
      raise LabelError(f"{where}: negative coordinate in {' '.join(parts)}")
    if x2 < x1 or y2 < y1:
      raise LabelError(f"{where}: x2 < x1 or y2 < y1 in {' '.join(parts)}")
    if x2 > width or y2 > height:
      raise LabelError(f"{where}: box {' '.join(parts)} is outside the "
                       f"{width}x{height} image")
    boxes[k] = x1, y1, x2, y2
  return boxes


def read_face_labels(path: str, *, width: int, height: int) -> np.ndarray:
  """``parse_face_labels`` of the file at ``path``.

  Raises:
    LabelError: the file is unreadable, not text, or malformed.
  """
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except UnicodeDecodeError:
    raise LabelError(f"{path}: not a text file") from None
  except OSError as e:
    raise LabelError(f"{path}: cannot read ({e.strerror})") from None
  return parse_face_labels(text, name=path, width=width, height=height)
