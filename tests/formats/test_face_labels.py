"""DARK FACE label files: what is read, and one clear line for each fault."""

import numpy as np
import pytest

from zerodce_jax.formats import face_labels


def _read(tmp_path, text, *, name="x.txt", width=40, height=20):
  path = tmp_path / name
  path.write_bytes(text if isinstance(text, bytes) else text.encode())
  return face_labels.read_face_labels(str(path), width=width, height=height)


def test_boxes_are_read_in_order(tmp_path):
  boxes = _read(tmp_path, "2\n4 2 20 10\n0 0 39 19\n")
  np.testing.assert_array_equal(boxes, [[4, 2, 20, 10], [0, 0, 39, 19]])
  assert boxes.dtype == np.float64
  # blank lines and spaces around are harmless; zero faces is an empty set
  assert _read(tmp_path, "\n1\n  1 2 3 4  \n\n").shape == (1, 4)
  assert _read(tmp_path, "0\n").shape == (0, 4)
  # one pixel of slack for tools that write exclusive ends (x2 == width)
  assert _read(tmp_path, "1\n0 0 40 20\n").shape == (1, 4)


@pytest.mark.parametrize("text,why", [
    ("", "empty label file"),
    ("  \n\n", "empty label file"),
    ("two\n1 2 3 4\n", "is not a number of faces"),
    ("-1\n", "is not a number of faces"),
    ("1 2\n1 2 3 4\n", "is not a number of faces"),
    ("2\n1 2 3 4\n", "says 2 faces, lists 1"),
    ("1\n1 2 3 4\n5 6 7 8\n", "says 1 faces, lists 2"),
    ("1\n1 2 3\n", "line 2: 3 values, wants 4"),
    ("1\n1 2 3 4 5\n", "line 2: 5 values, wants 4"),
    ("1\n1 2 x 4\n", "line 2: 'x' is not a number"),
    ("1\n1 2 nan 4\n", "line 2: 'nan' is not a finite number"),
    ("1\n-1 2 3 4\n", "line 2: negative coordinate"),
    ("1\n5 2 3 4\n", "line 2: x2 < x1"),
    ("1\n1 2 41 4\n", "outside the 40x20 image"),
    ("1\n1 2 3 21\n", "outside the 40x20 image"),
    (b"\xff\xfe1\n", "not a text file"),
])
def test_faults_are_one_line_naming_the_file(tmp_path, text, why):
  with pytest.raises(face_labels.LabelError) as e:
    _read(tmp_path, text, name="bad_label.txt")
  msg = str(e.value)
  assert why in msg and "bad_label.txt" in msg and "\n" not in msg, msg


def test_missing_file_is_a_label_error(tmp_path):
  with pytest.raises(face_labels.LabelError, match="nope.txt: cannot read"):
    face_labels.read_face_labels(str(tmp_path / "nope.txt"), width=4,
                                 height=4)
