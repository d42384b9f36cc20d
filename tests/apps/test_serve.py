"""``zerodce serve`` at the HTTP level, on loopback only: the page and its
headers, uploads (good, bad, hostile, too large), previews, downloads that
equal ``zerodce enhance``, refused cross-site requests, concurrent requests,
the temporary folder, and cached previews of a 1 MP photo. The page itself
in a real browser: test_serve_browser.py."""

import concurrent.futures
import http.client
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import zipfile

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from zerodce_jax import cli
from zerodce_jax.apps import serve
from zerodce_jax.formats import image_io, weights

TIMEOUT = 120  # seconds, any one request


def _request(srv, method, path, body=None, headers=None, *, page=True,
             host=None):
  """(status, headers, body) of one request on its own connection."""
  conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=TIMEOUT)
  h = {"Host": host or f"127.0.0.1:{srv.port}"}
  if page and method in ("POST", "DELETE"):
    h["X-Zerodce"] = "1"
  h.update(headers or {})
  try:
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    return r.status, dict(r.getheaders()), r.read()
  finally:
    conn.close()


def _json(srv, method, path, obj=None, **kw):
  body = None if obj is None else json.dumps(obj).encode()
  status, headers, data = _request(srv, method, path, body, **kw)
  return status, json.loads(data or b"null")


def _upload(srv, data, name="photo.png"):
  return _json_raw(srv, "POST", "/api/images", data,
                   {"X-Filename": urllib.parse.quote(name)})


def _json_raw(srv, method, path, body, headers):
  status, _, data = _request(srv, method, path, body, headers)
  return status, json.loads(data)


def _png(arr, **kw) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(arr).save(buf, format="PNG", **kw)
  return buf.getvalue()


def _dark(h, w, seed=0) -> np.ndarray:
  rng = np.random.default_rng(seed)
  return (rng.random((h, w, 3)) * 60).astype(np.uint8)


def _download(srv, ids, timeout=TIMEOUT, **settings):
  """Runs a download job to the end; (status json, headers, bytes)."""
  status, job = _json(srv, "POST", "/api/jobs", {"ids": ids, **settings})
  assert status == 202, job
  t = time.monotonic()
  while job["state"] in ("queued", "running"):
    assert time.monotonic() - t < timeout
    time.sleep(0.05)
    _, job = _json(srv, "GET", f"/api/jobs/{job['id']}")
  assert 0 <= job["progress"] <= 1
  if job["state"] != "done":
    return job, {}, b""
  status, headers, data = _request(srv, "GET", f"/api/jobs/{job['id']}/file")
  assert status == 200
  return job, headers, data


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
  parent = tmp_path_factory.mktemp("serve-tmp")
  limits = serve.Limits(max_upload_bytes=2 * 2**20, max_pixels=4_000_000,
                        max_images=50)
  engine = serve.Engine(limits=limits, tmp_parent=str(parent))
  with serve.running(engine) as s:
    s.tmp_parent = parent
    yield s
  assert not os.path.exists(engine.dir), "temporary folder left behind"


# ---------------------------------------------------------------- page --
def test_page_assets_and_headers(srv):
  status, headers, body = _request(srv, "GET", "/")
  assert status == 200 and b"/static/app.js" in body
  assert headers["Content-Type"].startswith("text/html")
  assert headers["Cache-Control"] == "no-store"
  assert headers["X-Content-Type-Options"] == "nosniff"
  csp = headers["Content-Security-Policy"]
  assert "script-src 'self'" in csp and "default-src 'none'" in csp
  assert "frame-ancestors 'none'" in csp and "unsafe" not in csp
  for path, mime in (("/static/app.js", "text/javascript"),
                     ("/static/app.css", "text/css")):
    status, headers, body = _request(srv, "GET", path)
    assert status == 200 and headers["Content-Type"].startswith(mime), path
  for path in ("/static/../engine.py", "/static/%2e%2e/engine.py",
               "/static/engine.py", "/etc/passwd", "//etc/passwd"):
    assert _request(srv, "GET", path)[0] == 404, path
  status, cfg = _json(srv, "GET", "/api/config")
  assert [m["id"] for m in cfg["models"]] == ["zerodce-default",
                                              "zerodce-pp-default"]
  assert cfg["default_model"] == "zerodce-default"
  assert cfg["limits"]["max_upload_bytes"] == 2 * 2**20


# ----------------------------------------------------------- downloads --
def test_download_equals_zerodce_enhance(srv, tmp_path):
  """16-bit RGBA PNG under a hostile name, strength 1.3: the download is
  what `zerodce enhance --strength 1.3` writes, bit for bit."""
  rgba = np.concatenate([
      _dark(37, 45, 1).astype(np.uint16) * 257,
      np.linspace(0, 65535, 37 * 45).reshape(37, 45, 1).astype(np.uint16)],
      axis=-1)
  src = tmp_path / "dark16.png"
  import png  # pypng writes 16-bit RGBA
  png.Writer(45, 37, bitdepth=16, alpha=True, greyscale=False).write(
      open(src, "wb"), rgba.reshape(37, -1))
  status, im = _upload(srv, src.read_bytes(),
                       "../..\\etc/<img src=x onerror=alert(1)>\r\nX-Evil: 1.png")
  assert status == 200, im
  assert im["name"] == "<img src=x onerror=alert(1)>X-Evil: 1.png"
  assert (im["width"], im["height"], im["bit_depth"], im["alpha"]) == (
      45, 37, 16, True)
  status, headers, data = _request(
      srv, "GET", f"/api/images/{im['id']}/preview?strength=1.3")
  assert status == 200 and headers["Content-Type"] == "image/jpeg"
  assert Image.open(io.BytesIO(data)).size == (45, 37)

  job, headers, data = _download(srv, [im["id"]], strength="1.3")
  assert job["errors"] == [] and job["warnings"] == []
  disposition = headers["Content-Disposition"]
  assert "\r" not in disposition and "\n" not in disposition
  assert disposition.startswith('attachment; filename="<img src=x')
  assert "_enhanced.png" in disposition
  got = tmp_path / "got.png"
  got.write_bytes(data)

  out = tmp_path / "cli"
  assert cli.main(["enhance", str(src), "-o", str(out), "--strength", "1.3",
                   "--no-progress"]) == 0
  want_rgb, want_info = image_io.read_image(str(out / "dark16.png"))
  got_rgb, got_info = image_io.read_image(str(got))
  assert (got_info.bit_depth, got_info.format) == (16, "png")
  np.testing.assert_array_equal(got_rgb, want_rgb)
  np.testing.assert_array_equal(got_info.alpha, want_info.alpha)
  # as JPEG: 8 bits, no alpha, and the page is told so
  job, headers, data = _download(srv, [im["id"]], format="jpeg")
  assert job["state"] == "done" and len(job["warnings"]) == 1
  assert "cannot hold 16 bits or alpha" in job["warnings"][0]
  assert job["warnings"][0].startswith("<img src=x")
  assert srv.engine.dir not in job["warnings"][0]


def test_big_photos_are_previewed_at_about_1mp(srv):
  ramp = np.linspace(0, 60, 1500, dtype=np.float32)
  smooth = np.broadcast_to(ramp[None, :, None], (1000, 1500, 3))
  status, im = _upload(srv, _png(smooth.astype(np.uint8)), "big.png")
  assert status == 200 and (im["width"], im["height"]) == (1500, 1000)
  status, _, data = _request(srv, "GET", f"/api/images/{im['id']}/before")
  w, h = Image.open(io.BytesIO(data)).size
  assert w * h <= serve.engine.PREVIEW_PIXELS and abs(w / h - 1.5) < 0.01
  assert w > 1200


def test_exif_orientation_format_and_zip(srv, tmp_path):
  """A rotated JPEG comes back upright, as PNG when asked; two images with
  the same name come back as a zip with two entries."""
  exif = Image.Exif()
  exif[0x0112] = 6  # stored 56x40, shown rotated: 40 wide, 56 high
  buf = io.BytesIO()
  Image.fromarray(_dark(40, 56, 2)).save(buf, format="JPEG", exif=exif)
  ids = []
  for _ in range(2):
    status, im = _upload(srv, buf.getvalue(), "rotated.jpg")
    assert status == 200, im
    assert (im["width"], im["height"]) == (40, 56)
    ids.append(im["id"])
  job, headers, data = _download(srv, [ids[0]], format="png")
  assert Image.open(io.BytesIO(data)).size == (40, 56)
  assert 'filename="rotated_enhanced.png"' in headers["Content-Disposition"]

  job, headers, data = _download(srv, ids, model="zerodce-pp-default",
                                 format="jpeg", strength="1.2")
  assert job["state"] == "done" and job["progress"] == 1
  assert headers["Content-Type"] == "application/zip"
  with zipfile.ZipFile(io.BytesIO(data)) as z:
    assert z.namelist() == ["rotated_enhanced.jpg",
                            "rotated_enhanced (2).jpg"]
    assert Image.open(z.open(z.namelist()[1])).size == (40, 56)


# ---------------------------------------------------------- bad input --
def test_bad_uploads_get_one_clear_message(srv):
  engine = srv.engine
  before = len(engine.images())
  sample = open(weights.asset_path(weights.SAMPLE_IMAGE), "rb").read()
  cases = [
      (b"hello, not an image", "notes.txt", 400, "not a readable image"),
      (sample[:len(sample) // 2], "cut.jpg", 400, "cut.jpg: cannot read"),
      (_png(np.zeros((2001, 2001), np.uint8)), "huge.png", 413,
       "megapixels"),
      (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "fake.png", 400, "fake.png"),
  ]
  for data, name, want_status, want in cases:
    status, res = _upload(srv, data, name)
    assert status == want_status, (name, res)
    assert want in res["error"], (name, res)
    assert engine.dir not in res["error"] and "uploads" not in res["error"]
  status, res = _upload(srv, b"", "empty.png")
  assert status == 400 and res["error"] == "empty.png: empty file"
  # over the upload limit: refused from the header, the body never read
  conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
  conn.putrequest("POST", "/api/images", skip_host=True)
  conn.putheader("Host", f"127.0.0.1:{srv.port}")
  conn.putheader("X-Zerodce", "1")
  conn.putheader("Content-Length", str(3 * 2**20))
  conn.endheaders()
  r = conn.getresponse()
  assert r.status == 413 and b"larger than the limit" in r.read()
  conn.close()
  # no Content-Length
  conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
  conn.putrequest("POST", "/api/images", skip_host=True)
  conn.putheader("Host", f"127.0.0.1:{srv.port}")
  conn.putheader("X-Zerodce", "1")
  conn.endheaders()
  assert conn.getresponse().status == 411
  conn.close()
  # nothing was kept: no image, no file, nothing outside the private folder
  assert len(engine.images()) == before
  kept = {os.path.basename(r.path) for r in engine._images.values()}
  assert set(os.listdir(os.path.join(engine.dir, "uploads"))) == kept
  assert os.listdir(srv.tmp_parent) == [os.path.basename(engine.dir)]
  assert oct(os.stat(engine.dir).st_mode & 0o777) == "0o700"


def test_requests_from_elsewhere_and_bad_values_are_refused(srv):
  port = srv.port
  status, im = _upload(srv, _png(_dark(20, 30)), "ok.png")
  assert status == 200
  preview = f"/api/images/{im['id']}/preview"
  refused = [
      # DNS rebinding: a page of another name resolved to 127.0.0.1
      ("GET", "/", {}, {"host": f"evil.example:{port}"}),
      ("GET", "/api/config", {}, {"host": f"evil.example:{port}"}),
      ("GET", "/api/config", {}, {"host": f"127.0.0.1:{port + 1}"}),
      ("GET", "/api/config", {"Sec-Fetch-Site": "cross-site"}, {}),
      ("GET", preview, {"Sec-Fetch-Site": "same-site"}, {}),
      # POSTs without the page's header, or from another origin
      ("POST", "/api/jobs", {}, {"page": False}),
      ("POST", "/api/jobs", {"Origin": "http://evil.example"}, {}),
      ("DELETE", f"/api/images/{im['id']}", {"Origin": "null"}, {}),
  ]
  for method, path, headers, kw in refused:
    status, h, body = _request(srv, method, path, b"{}" if method == "POST"
                               else None, headers, **kw)
    assert status == 403, (method, path, headers, kw, body)
  status, headers, _ = _request(srv, "OPTIONS", "/api/images", None,
                                {"Origin": "http://evil.example",
                                 "Access-Control-Request-Method": "POST"})
  assert status == 405 and "Access-Control-Allow-Origin" not in headers
  # the image was not deleted by the refused DELETE
  assert _request(srv, "GET", preview + "?strength=1")[0] == 200

  bad = [
      ("?model=../../etc/passwd", 400, "unknown model"),
      ("?model=weights", 400, "unknown model"),
      ("?strength=abc", 400, "strength"),
      ("?strength=9", 400, "strength"),
      ("?strength=nan", 400, "strength"),
      ("?exposure=2", 400, "exposure"),
      ("?denoise=-1", 400, "denoise"),
      ("?highlights=maybe", 400, "highlights"),
  ]
  for query, want_status, want in bad:
    status, _, body = _request(srv, "GET", preview + query)
    assert status == want_status and want in json.loads(body)["error"], query
  # denoise passes through to the controls (applied once quality has it)
  status, headers, _ = _request(srv, "GET", preview + "?denoise=0.5&"
                                "highlights=off&strength=1.2")
  assert status == 200 and headers["Content-Type"] == "image/jpeg"
  for path in ("/api/images/nope/preview", "/api/images/..%2F..%2Fx/before",
               "/api/jobs/nope", "/api/jobs/nope/file", "/api/nothing"):
    assert _request(srv, "GET", path)[0] == 404, path
  for obj, want in (({"ids": "x"}, "ids"), ({"ids": []}, "ids"),
                    ({"ids": [im["id"]], "format": "exe"}, "format"),
                    ({"ids": [im["id"]], "model": "/tmp/w.msgpack"},
                     "unknown model"),
                    ({"ids": ["missing-id-123"]}, "no such image")):
    status, res = _json(srv, "POST", "/api/jobs", obj)
    assert status in (400, 404) and want in res["error"], obj
  status, _, body = _request(srv, "POST", "/api/jobs", b"{not json")
  assert status == 400 and b"JSON" in body


def test_limits_on_images_and_jobs(tmp_path):
  limits = serve.Limits(max_images=2, max_jobs=1)
  engine = serve.Engine(limits=limits, tmp_parent=str(tmp_path))
  with serve.running(engine) as s:
    ids = [_upload(s, _png(_dark(8, 8, i)), f"{i}.png")[1]["id"]
           for i in range(2)]
    status, res = _upload(s, _png(_dark(8, 8)), "third.png")
    assert status == 429 and "remove some" in res["error"]
    assert _request(s, "DELETE", f"/api/images/{ids[0]}")[0] == 200
    assert _upload(s, _png(_dark(8, 8)), "third.png")[0] == 200
    engine._model_lock.acquire()  # hold the worker on its first image
    try:
      assert _json(s, "POST", "/api/jobs", {"ids": ids[1:]})[0] == 202
      status, res = _json(s, "POST", "/api/jobs", {"ids": ids[1:]})
      assert status == 429 and "under way" in res["error"]
    finally:
      engine._model_lock.release()
  assert os.listdir(tmp_path) == []


# --------------------------------------------------------- concurrency --
def test_concurrent_requests_do_not_mix_up_results(srv):
  """Uploads and previews from 8 threads at once, in shuffled order: every
  answer is the one its request asked for (bounded: 4 uploads, 24
  previews)."""
  datas = [_png(_dark(24, 32, 10 + i)) for i in range(4)]
  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    ups = list(pool.map(lambda d: _upload(srv, d[1], f"c{d[0]}.png"),
                        enumerate(datas)))
  assert all(status == 200 for status, _ in ups)
  ids = [im["id"] for _, im in ups]
  assert len(set(ids)) == 4
  combos = [(i, s) for i in ids[:3] for s in ("0.5", "1", "1.7", "2.5")]
  want = {c: _request(srv, "GET", f"/api/images/{c[0]}/preview?strength="
                      f"{c[1]}")[2] for c in combos}
  assert len(set(want.values())) == len(combos)
  order = combos * 2
  np.random.default_rng(0).shuffle(order)
  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    got = list(pool.map(lambda c: (c, _request(
        srv, "GET", f"/api/images/{c[0]}/preview?strength={c[1]}")), order))
  for c, (status, _, body) in got:
    assert status == 200 and body == want[c], c


# ---------------------------------------------------- cached previews --
def test_previews_of_a_1mp_photo_rerender_the_cached_maps(srv):
  """Once a photo's curve maps are cached, a new strength or exposure only
  re-renders them: the cache is given maps of the right shape and the
  previews follow them (the times: ``python -m benchmarks.serve``)."""
  rng = np.random.default_rng(3)
  rgb = (rng.random((864, 1152, 3)) ** 2 * 80).astype(np.uint8)
  buf = io.BytesIO()
  Image.fromarray(rgb).save(buf, format="JPEG", quality=92)
  status, im = _upload(srv, buf.getvalue(), "1mp.jpg")
  assert status == 200, im
  maps = jnp.asarray(rng.uniform(0.1, 0.5, (864, 1152, 24)), jnp.float32)
  srv.engine._cache.put((im["id"], "maps", "zerodce-default"), maps)
  url = f"/api/images/{im['id']}/preview?"
  means = []
  for query in ("strength=0&denoise=off", "strength=1&denoise=off",
                "strength=2&denoise=off", "exposure=0.5"):
    status, _, body = _request(srv, "GET", url + query)
    assert status == 200 and body[:2] == b"\xff\xd8"
    means.append(np.asarray(Image.open(io.BytesIO(body))).mean() / 255)
  assert means[0] < means[1] < means[2]
  assert abs(means[0] - rgb.mean() / 255) < 0.01  # strength 0: the input
  assert abs(means[3] - 0.5) < 0.03


# ------------------------------------------------------- command line --
def test_command_line_serves_and_cleans_up_on_sigterm(tmp_path, capsys):
  assert cli.main(["serve", "--weights", str(tmp_path / "none.msgpack"),
                   "--port", "0"]) == 2
  assert "none.msgpack" in capsys.readouterr().err
  env = {**os.environ, "TMPDIR": str(tmp_path)}
  proc = subprocess.Popen(
      [sys.executable, "-m", "zerodce_jax", "serve", "--port", "0"],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
  try:
    line = proc.stdout.readline()  # zerodce serve: open http://...
    assert "open http://127.0.0.1:" in line, (line, proc.stderr.read())
    port = int(line.split("127.0.0.1:")[1].split("/")[0])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/api/config")
    assert conn.getresponse().status == 200
    conn.close()
    assert [p for p in os.listdir(tmp_path) if p.startswith("zerodce-serve")]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert "temporary files removed" in proc.stdout.read()
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  assert not [p for p in os.listdir(tmp_path) if p.startswith("zerodce-serve")]
