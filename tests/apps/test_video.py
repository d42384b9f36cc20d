"""Video: streaming enhancement keeps frames, timing and audio; equals the
image path frame by frame; smoothing lowers flicker; bad files fail clearly."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _support import optional

from zerodce_jax import cli
from zerodce_jax.formats import image_io, params_io
from zerodce_jax.core import models
from zerodce_jax.apps import enhance, quality, video

av = optional("av", extra="video")


def make_clip(path, *, n=36, w=64, h=48, fps=24, audio=True,
              codec="libx264", fmt=None, frames=None, seed=0, pts=None):
  """A clip: dark moving gradients with a little noise (or ``frames``),
  with an AAC tone."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w]

  def gradients():
    for i in range(n):
      img = np.stack([20 + 30 * np.sin((xx + i) / 9), 25 + 20 * np.cos(
          (yy - i) / 7), 15 + 10 * np.sin((xx + yy) / 11)], -1)
      yield np.clip(img + rng.normal(0, 1, img.shape), 0, 255).astype(
          np.uint8)

  video.write_clip(str(path), frames if frames is not None else gradients(),
                   fps=fps, codec=codec, container_format=fmt, pts=pts,
                   options={"crf": "10"} if codec == "libx264" else None,
                   audio_rate=22050 if audio else None)
  return path


def decode(path):
  """(frames [N, H, W, 3] uint8, pts list, rate, audio packet bytes)."""
  with av.open(str(path)) as c:
    v = c.streams.video[0]
    rate = v.average_rate
    frames, pts, audio = [], [], []
    for packet in c.demux():
      if packet.stream.type == "audio" and packet.dts is not None:
        audio.append(bytes(packet))
      elif packet.stream.type == "video":
        for f in packet.decode():
          frames.append(f.to_ndarray(format="rgb24"))
          pts.append(f.pts)
  return np.stack(frames), pts, rate, audio


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
  """Small random Zero-DCE++ weights with a strong enough response."""
  model = models.make_model("zerodce++", bias_init="torch")
  params = model.init(jax.random.key(1), jnp.zeros((1, 8, 8, 3)))["params"]
  path = tmp_path_factory.mktemp("w") / "pp.msgpack"
  params_io.save_params(str(path), params, arch=params_io.arch_of(model))
  return str(path), params, model


def test_output_keeps_frames_rate_size_and_audio(tmp_path, weights, capsys):
  src = make_clip(tmp_path / "clip.mp4")
  rc = cli.main(["enhance", str(src), "-o", str(tmp_path / "out"),
                 "--weights", weights[0], "--scale-factor", "4",
                 "--temporal-smoothing", "0", "--no-progress"])
  assert rc == 0, capsys.readouterr().err
  a_frames, a_pts, a_rate, a_audio = decode(src)
  b_frames, b_pts, b_rate, b_audio = decode(tmp_path / "out" / "clip.mp4")
  assert b_frames.shape == a_frames.shape == (36, 48, 64, 3)
  assert b_rate == a_rate == 24
  assert a_audio and b_audio == a_audio  # bit-identical packets
  with av.open(str(src)) as a, av.open(str(tmp_path / "out" / "clip.mp4")) \
      as b:
    va, vb = a.streams.video[0], b.streams.video[0]
    assert float(vb.duration * vb.time_base) == pytest.approx(
        float(va.duration * va.time_base), abs=1e-3)
    assert vb.codec_context.name == "h264" and vb.codec_context.pix_fmt == (
        "yuv420p")
  # the enhancement happened (H.264 at crf 18 is lossy: compare means)
  _, params, model = weights
  want = _expected(a_frames, model.clone(scale_factor=4), params)
  assert np.abs(b_frames.astype(float) - want).mean() < 2.5
  assert np.abs(b_frames.astype(float) - a_frames).mean() > 10
  assert not [p for p in (tmp_path / "out").iterdir() if "tmp" in p.name]


def _expected(frames, model, params):
  """Each decoded frame enhanced as an image (the image path's maths)."""
  x = jnp.asarray(frames.astype(np.float32) / 255)
  y = np.asarray(jax.jit(lambda p, x: model.apply({"params": p}, x)[0])(
      params, x))
  return image_io.from_float(y, 8)


def test_frames_equal_per_frame_image_enhancement(tmp_path, weights):
  """Lossless in and out (FFV1): the video path is the image path."""
  _, params, model = weights
  model = model.clone(scale_factor=4)
  src = make_clip(tmp_path / "clip.mkv", codec="ffv1", audio=False, n=20)
  out = tmp_path / "out.mkv"
  rep = video.enhance_video(str(src), str(out), model, params, smoothing=0.0,
                            codec="ffv1", batch_size=8, progress=False)
  assert rep.frames == 20 and rep.error is None
  frames, pts, _, _ = decode(src)
  got, got_pts, _, _ = decode(out)
  assert got_pts == pts
  diff = np.abs(got.astype(int) - _expected(frames, model, params).astype(int))
  assert diff.max() <= 1, diff.max()


def test_variable_frame_rate_timestamps_are_kept(tmp_path, weights):
  _, params, model = weights
  pts = [0, 1, 2, 5, 6, 9, 10, 11, 20, 21]
  src = make_clip(tmp_path / "vfr.mkv", codec="ffv1", audio=False, n=10,
                  pts=pts, fps=30)
  out = tmp_path / "o.mkv"
  video.enhance_video(str(src), str(out), model.clone(scale_factor=4), params,
                      codec="ffv1", progress=False)
  a_pts, b_pts = decode(src)[1], decode(out)[1]
  assert len(b_pts) == 10 and b_pts == a_pts


def _pan_over_photo(path, n, w, h, *, seed=0):
  """Frames of a slow pan over a darkened photo, fresh noise in each."""
  from PIL import Image
  rng = np.random.default_rng(seed)
  photo = Image.open(path).convert("RGB")
  frames = []
  for i in range(n):
    x0 = 40 + 2 * i
    im = photo.resize((w, h), Image.Resampling.BILINEAR,
                      box=(x0, 60, x0 + 4 * w // 3, 60 + 4 * h // 3))
    x = np.asarray(im, np.float32) / 255 * 0.35 + rng.normal(0, 0.03,
                                                              (h, w, 3))
    frames.append(np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8))
  return frames


def test_smoothing_reduces_flicker_and_resets_at_cuts(tmp_path, shared,
                                                      official_zerodce_pp):
  """The official Zero-DCE++ (scale 12), whose per-frame maps do flicker on a
  slow pan over a dark, noisy photo: smoothing lowers the output's
  brightness flicker; after a cut to another photo the average restarts."""
  params, arch, _ = official_zerodce_pp
  model = models.DCENet(**arch, scale_factor=12)
  w, h = 192, 144
  frames = (_pan_over_photo(shared / "test_images" / "DICM" / "01.jpg", 30,
                            w, h)
            + _pan_over_photo(shared / "test_images" / "DICM" / "12.jpg", 10,
                              w, h, seed=1))
  src = make_clip(tmp_path / "pan.mkv", codec="ffv1", audio=False, n=40,
                  frames=frames, w=w, h=h)
  stats = {}
  for a in (0.0, 0.6):
    out = tmp_path / f"o{a}.mkv"
    video.enhance_video(str(src), str(out), model, params, smoothing=a,
                        codec="ffv1", progress=False)
    means = decode(out)[0].reshape(40, -1).mean(axis=1) / 255
    stats[a] = (video.flicker(means[:30]), means)
  off, on = stats[0.0], stats[0.6]
  assert on[0] < 0.9 * off[0], (on[0], off[0])
  # the first frame after the cut uses its own maps (the average restarts)
  assert abs(on[1][30] - off[1][30]) < 1e-3
  assert abs(on[1][29] - off[1][29]) > 1e-4  # ...while before it, it did not


def test_scene_cuts():
  t = np.full((6, 4, 4), 0.1, np.float32)
  t[2] = 0.105          # +5% of a dark level: noise, not a cut
  t[4:] = 0.2           # doubled: a cut (relative change 0.1 / 0.16)
  cuts, last = video.scene_cuts(t, None, threshold=0.12)
  assert cuts.tolist() == [True, False, False, False, True, False]
  cuts, _ = video.scene_cuts(t[:2], last, threshold=0.12)
  assert cuts.tolist() == [True, False]


def test_bad_videos_fail_one_line_each_and_the_rest_goes_on(tmp_path, weights,
                                                            capsys):
  src = tmp_path / "in"
  src.mkdir()
  make_clip(src / "good.mp4", n=12)
  # truncated Matroska: what decodes is kept, exit status says it broke
  make_clip(tmp_path / "long.mkv", codec="ffv1", audio=False, n=30)
  data = (tmp_path / "long.mkv").read_bytes()
  (src / "cut.mkv").write_bytes(data[:len(data) * 2 // 3])
  # audio only
  out = av.open(str(src / "sound.mp4"), "w")
  a_s = out.add_stream("aac", rate=22050, layout="mono")
  for k in range(10):
    a = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32),
                                   format="fltp", layout="mono")
    a.sample_rate, a.pts = 22050, k * 1024
    for p in a_s.encode(a):
      out.mux(p)
  for p in a_s.encode(None):
    out.mux(p)
  out.close()
  # an MP4 header and then garbage
  (src / "junk.mp4").write_bytes(b"\0\0\0\x18ftypisom" + os.urandom(3000))
  rc = cli.main(["enhance", str(src), "-o", str(tmp_path / "out"),
                 "--weights", weights[0], "--scale-factor", "4",
                 "--no-progress"])
  err = capsys.readouterr().err.strip().splitlines()
  assert rc == 1
  by = {os.path.basename(l.split(": ")[1]): l for l in err}
  assert set(by) == {"cut.mkv", "sound.mp4", "junk.mp4"}, err
  assert "decoding stopped after frame" in by["cut.mkv"]
  assert "no video stream" in by["sound.mp4"]
  assert "not a readable video" in by["junk.mp4"] or "no frame" in by[
      "junk.mp4"]
  outs = sorted(p.name for p in (tmp_path / "out").iterdir())
  assert outs == ["cut.mkv", "good.mp4"]
  n_cut = len(decode(tmp_path / "out" / "cut.mkv")[0])
  assert 5 < n_cut < 30


def test_frame_size_change_mid_stream(tmp_path, weights):
  """Two H.264 streams of different sizes joined in one Matroska track."""
  _, params, model = weights
  raw = b""
  for k, (w, h) in enumerate([(64, 48), (48, 32)]):
    p = tmp_path / f"{k}.h264"
    make_clip(p, w=w, h=h, n=6, audio=False, fmt="h264")
    raw += p.read_bytes()
  (tmp_path / "joined.h264").write_bytes(raw)
  src = tmp_path / "joined.mkv"
  with av.open(str(tmp_path / "joined.h264")) as i, av.open(str(src),
                                                             "w") as o:
    s = o.add_stream_from_template(i.streams.video[0])
    for n, packet in enumerate(i.demux()):
      if packet.size:
        packet.stream, packet.pts, packet.dts = s, n, n
        packet.time_base = s.time_base
        o.mux(packet)
  out = tmp_path / "out.mkv"
  with pytest.raises(video.VideoError, match="frame size changes at frame 6"):
    video.enhance_video(str(src), str(out), model.clone(scale_factor=4),
                        params, progress=False)
  assert not out.exists() and list(tmp_path.glob(".out*")) == []


def test_videos_are_found_by_content(tmp_path):
  make_clip(tmp_path / "a.mp4", n=3, audio=False)
  os.rename(tmp_path / "a.mp4", tmp_path / "mislabelled.jpg")
  make_clip(tmp_path / "b.mkv", n=3, audio=False, codec="ffv1")
  (tmp_path / "t.png").write_bytes(b"\x89PNG\r\n\x1a\n")
  assert video.is_video(str(tmp_path / "mislabelled.jpg"))
  assert video.is_video(str(tmp_path / "b.mkv"))
  assert not video.is_video(str(tmp_path / "t.png"))


def test_rotation_is_kept(tmp_path, weights):
  _, params, model = weights
  src = tmp_path / "phone.mp4"
  video.write_clip(str(src), [np.full((48, 64, 3), 30, np.uint8)] * 6,
                   fps=24, rotation=90)
  dst = tmp_path / "o.mp4"
  video.enhance_video(str(src), str(dst), model.clone(scale_factor=4), params,
                      progress=False)
  with av.open(str(dst)) as c:
    frame = next(c.decode(video=0))
    assert frame.rotation == 90 and (frame.width, frame.height) == (64, 48)


def test_ten_bit_source_stays_ten_bit(tmp_path, weights):
  _, params, model = weights
  src = tmp_path / "ten.mkv"
  rng = np.random.default_rng(0)
  video.write_clip(str(src), [(rng.random((48, 64, 3)) * 12000).astype(
      np.uint16) for _ in range(6)], fps=24)
  dst = tmp_path / "o.mkv"
  rep = video.enhance_video(str(src), str(dst), model.clone(scale_factor=4),
                            params, progress=False)
  assert rep.frames == 6 and rep.bit_depth == 16  # enhanced in 16 bits
  with av.open(str(dst)) as c:
    assert c.streams.video[0].codec_context.pix_fmt == "yuv420p10le"


def test_frames_above_the_pixel_limit_are_refused(tmp_path, weights,
                                                  monkeypatch):
  """A file declaring huge frames (a decompression bomb) is refused before
  any frame is decoded, with the limit the image readers use."""
  from PIL import Image
  _, params, model = weights
  src = make_clip(tmp_path / "big.mp4", n=3, audio=False)
  monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # limit: 2000 pixels
  with pytest.raises(video.VideoError, match="64x48 pixels exceed"):
    video.enhance_video(str(src), str(tmp_path / "o.mp4"),
                        model.clone(scale_factor=4), params, progress=False)
  assert list(tmp_path.iterdir()) == [src]


@pytest.mark.parametrize("controls", [
    quality.Controls(strength=2.0),
    quality.Controls(strength=0.5, denoise=0.6),
])
def test_controlled_frames_equal_the_controlled_image_path(tmp_path, weights,
                                                           controls):
  """Lossless in and out: strength and denoising do to each frame what
  ``Enhancer(..., controls=...)`` does to it as an image."""
  _, params, model = weights
  model = model.clone(scale_factor=4)
  src = make_clip(tmp_path / "clip.mkv", codec="ffv1", audio=False, n=8)
  out = tmp_path / "out.mkv"
  rep = video.enhance_video(str(src), str(out), model, params, smoothing=0.0,
                            codec="ffv1", batch_size=8, progress=False,
                            controls=controls)
  assert rep.frames == 8
  frames, _, _, _ = decode(src)
  got, _, _, _ = decode(out)
  en = enhance.Enhancer(model, params)
  ref = [image_io.from_float(y, 8) for y in en(
      [f.astype(np.float32) / 255 for f in frames], controls=controls)]
  if controls.denoise:
    # each frame's noise is estimated on every 4th pixel (every 2nd for an
    # image): a slightly different filter, the same result to a few levels
    assert np.abs(got.astype(int) - np.stack(ref).astype(int)).mean() < 1.0
  else:
    assert np.abs(got.astype(int) - np.stack(ref).astype(int)).max() <= 1


def test_video_exposure_lands_on_the_target(tmp_path, weights):
  _, params, model = weights
  model = model.clone(scale_factor=4)
  src = make_clip(tmp_path / "clip.mkv", codec="ffv1", audio=False, n=8)
  run = functools.partial(video.enhance_video, model=model, params=params,
                          smoothing=0.0, codec="ffv1", batch_size=4,
                          progress=False)
  run(str(src), str(tmp_path / "plain.mkv"))
  # halfway between the input (strength 0) and the model (strength 1): a
  # target every frame can reach, whatever the test weights' curves
  target = (decode(src)[0].mean() + decode(tmp_path / "plain.mkv")[0].mean()
            ) / 2 / 255
  out = tmp_path / "out.mkv"
  run(str(src), str(out), controls=quality.Controls(exposure=float(target)))
  got, _, _, _ = decode(out)
  means = got.reshape(len(got), -1).mean(axis=1) / 255
  assert np.all(np.abs(means - target) < 0.02), (means, target)
