"""`snn serve`: its JSON API (Starlette's test client), its library (DigitReader) and the
command as a real process."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from snncli.cli import app

pytest.importorskip("starlette", reason="the serve extra is not installed")

from starlette.testclient import TestClient  # noqa: E402

from snncli.choice import choose_checkpoint  # noqa: E402
from snncli.serve import announcement, listen  # noqa: E402
from snncli.serve.app import MAX_BODY, STATIC, create_app  # noqa: E402
from snncli.serve.service import MAX_STEPS, DigitReader  # noqa: E402

DIGITS = Path(__file__).resolve().parent / "data" / "user_digits"
# One file of several kinds: a drawing, photos, a transparent PNG, an MNIST-like 28x28, a
# chalk board, a tiny 1-pixel drawing, a faint line.
KINDS = ["drawing", "photo", "rgba", "mnistlike", "board", "small1px", "faint", "ballpoint"]
FILES = [next(iter(sorted(DIGITS.glob(f"{d}_*_{kind}_*"))), None)
         for d, kind in zip((3, 7, 2, 5, 8, 1, 4, 9), KINDS, strict=True)]
FILES = [f for f in FILES if f is not None]
PREDICT_FIELDS = ("prediction", "confidence", "spike_counts", "scores", "low_contrast")
TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


@pytest.fixture(scope="module")
def reader():
    path, why = choose_checkpoint("bundled", "csnn")
    found = DigitReader(path, why)
    yield found
    found.close()


@pytest.fixture(scope="module")
def client(reader):
    with TestClient(create_app(reader)) as c:
        yield c


def post_bytes(client, data: bytes, kind: str = "image/png", query: str = ""):
    return client.post(f"/api/predict{query}", content=data, headers={"Content-Type": kind})


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A valid PNG header that declares width x height pixels, with almost no data: what a
    decompression bomb or a huge canvas looks like before it is decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def drawn_one() -> bytes:
    """A 280x280 canvas as the page sends it: a white vertical stroke on black."""
    canvas = np.zeros((280, 280), np.uint8)
    canvas[50:230, 130:150] = 255
    return png(canvas)


GOOD = drawn_one()


def assert_good(client):
    answer = post_bytes(client, GOOD)
    assert answer.status_code == 200, answer.text
    assert answer.json()["prediction"] == 1


def test_predictions_equal_snn_predict_json(client):
    assert len(FILES) >= 6
    result = CliRunner().invoke(app, ["predict", "--json", "--checkpoint", "bundled",
                                      *map(str, FILES)])
    assert result.exit_code == 0, result.output
    expected = json.loads(result.stdout)
    assert len(expected) == len(FILES)
    for path, want in zip(FILES, expected, strict=True):
        data = path.read_bytes()
        as_body = post_bytes(client, data, TYPES[path.suffix])
        as_form = client.post("/api/predict", files={"file": (path.name, data, "image/x-any")})
        for answer in (as_body, as_form):
            assert answer.status_code == 200, (path, answer.text)
            got = answer.json()
            assert {k: got[k] for k in PREDICT_FIELDS} == {k: want[k] for k in PREDICT_FIELDS}
        assert as_form.json()["path"] == path.name
        assert as_body.json()["path"] == "<upload>"


def test_the_answer_holds_what_the_page_draws(client, reader):
    answer = post_bytes(client, GOOD).json()
    assert answer["classes"] == [str(i) for i in range(10)]
    assert answer["steps"] == reader.steps == 16
    raster = np.array(answer["raster"])
    assert raster.shape == (16, 10) and set(np.unique(raster)) <= {0, 1}
    assert raster.sum(0).tolist() == answer["spike_counts"]  # the raster is the output spikes
    image = np.array(answer["image"])
    assert image.shape == (28, 28) and image.dtype.kind == "i" and image.max() > 200
    assert image[:, :4].max() == 0  # a 1 drawn in the middle: the sides are black
    names = [layer["name"] for layer in answer["layers"]]
    assert names == reader.info()["layers"] and len(names) == 4
    assert all(0 < layer["rate"] < 1 for layer in answer["layers"])
    assert answer["runner_up"] != answer["prediction"]
    assert abs(sum(answer["shares"]) - 1) < 1e-4


def test_steps_change_the_raster(client):
    counts = []
    for steps in (1, 5, 40, MAX_STEPS):
        answer = post_bytes(client, GOOD, query=f"?steps={steps}").json()
        assert answer["steps"] == steps
        assert len(answer["raster"]) == steps
        counts.append(sum(answer["spike_counts"]))
    assert counts[0] <= 1 < counts[1] < counts[2] < counts[3]  # at most a spike per step


def test_a_drawing_in_either_polarity_reads_the_same(client):
    white_on_black = np.asarray(Image.open(io.BytesIO(GOOD)))
    for image in (white_on_black, 255 - white_on_black):
        assert post_bytes(client, png(image)).json()["prediction"] == 1


def test_json_with_a_data_url_or_base64(client):
    encoded = base64.b64encode(GOOD).decode()
    for value in (encoded, "data:image/png;base64," + encoded):
        answer = client.post("/api/predict", json={"image": value})
        assert answer.status_code == 200, answer.text
        assert answer.json()["prediction"] == 1


def chunked(data: bytes, size: int = 1 << 20):
    for start in range(0, len(data), size):
        yield data[start : start + size]


BIG = b"\0" * (MAX_BODY + 1)
BAD = {
    "not an image": (dict(content=b"hello", headers={"Content-Type": "image/png"}), 422,
                     "not an image"),
    "0 bytes": (dict(content=b"", headers={"Content-Type": "image/png"}), 400, "empty"),
    "0-byte file in a form": (dict(files={"file": ("x.png", b"", "image/png")}), 400, "empty"),
    "form without a file": (dict(files={"image": ("x.png", GOOD, "image/png")}), 400,
                            "'file'"),
    "file name with a control character": (dict(files={"file": ("a\x1bb.png", b"x",
                                                                  "image/png")}), 422,
                                           "a\\x1bb.png is not an image"),
    "form with text for the file": (dict(data={"file": "abc"},
                                         files={"other": ("x.png", GOOD, "image/png")}), 400,
                                    "'file'"),
    "damaged png": (dict(content=GOOD[: len(GOOD) // 2],
                         headers={"Content-Type": "image/png"}), 422, "truncated"),
    "decompression bomb": (dict(content=png_declaring(30_000, 30_000),
                                headers={"Content-Type": "image/png"}), 422, "too large"),
    "huge canvas": (dict(json={"image": "data:image/png;base64," + base64.b64encode(
        png_declaring(8_000, 8_000)).decode()}), 422, "too large"),
    "blank canvas": (dict(content=png(np.zeros((280, 280), np.uint8)),
                          headers={"Content-Type": "image/png"}), 422, "blank"),
    "over 10 MB": (dict(content=BIG, headers={"Content-Type": "image/png"}), 413, "10 MB"),
    "over 10 MB in a form": (dict(files={"file": ("x.png", BIG, "image/png")}), 413, "10 MB"),
    "over 10 MB chunked": (dict(content=chunked(BIG), headers={"Content-Type": "image/png"}),
                           413, "10 MB"),
    "malformed JSON": (dict(content=b'{"image": ', headers={"Content-Type": "application/json"}),
                       400, "not valid JSON"),
    "JSON without an image": (dict(json={"picture": "x"}), 422, '"image"'),
    "JSON list": (dict(json=[1, 2]), 422, '"image"'),
    "JSON bad base64": (dict(json={"image": "not base64!"}), 400, "base64"),
    "text/plain": (dict(content=b"1", headers={"Content-Type": "text/plain"}), 415,
                   "Content-Type text/plain"),
    "no content type": (dict(content=b"1"), 415, "no Content-Type"),
    "steps 0": (dict(content=GOOD, headers={"Content-Type": "image/png"}, params={"steps": 0}),
                400, "steps"),
    "steps over the bound": (dict(content=GOOD, headers={"Content-Type": "image/png"},
                                  params={"steps": MAX_STEPS + 1}), 400, "steps"),
    "steps not a number": (dict(content=GOOD, headers={"Content-Type": "image/png"},
                                params={"steps": "ten"}), 400, "steps"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_a_4xx_json_error_and_the_next_request_works(client, case):
    request, status, message = BAD[case]
    answer = client.post("/api/predict", **request)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert list(body) == ["error"] and message in body["error"], body
    assert "\n" not in body["error"] and "Traceback" not in body["error"]
    assert_good(client)


def test_wrong_method_and_unknown_path_are_json_errors(client):
    for answer, status in ((client.get("/api/predict"), 405), (client.get("/api/nope"), 404)):
        assert answer.status_code == status
        assert "error" in answer.json()
    assert_good(client)


def test_the_page_loads_nothing_from_elsewhere(client):
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    names = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert "/static/app.js" in names and "/static/style.css" in names
    for name in names:
        assert name.startswith(("/static/", "data:")), name
        if name.startswith("/static/"):
            assert client.get(name).status_code == 200
    for path in STATIC.iterdir():  # no address outside the app, in any file of the page
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", path.read_text()), path
    info = client.get("/api/info").json()
    assert info["model"] == "csnn" and info["max_steps"] == MAX_STEPS and info["steps"] == 16
    assert info["bundled"] is True


def test_requests_at_once_get_the_same_answers(reader):
    """Eight threads calling one DigitReader get each image's own answer."""
    images = [(p.read_bytes(), p.name) for p in FILES]
    alone = [reader.predict(data, name) for data, name in images]
    found: dict[int, list] = {}

    def client_thread(index: int):
        found[index] = [reader.predict(data, name, steps=None if index % 2 else 16)
                        for data, name in images]

    threads = [threading.Thread(target=client_thread, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 8
    for answers in found.values():
        assert answers == alone


def run_snn(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snncli", *args], capture_output=True,
                          text=True, timeout=120, **kwargs)


def test_serve_without_the_extra_says_what_to_install():
    code = ("import sys; sys.modules['starlette'] = None; "
            "from snncli.cli import app; sys.argv = ['snn', 'serve']; app()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), out.stderr
    assert 'pip install "snncli[serve]"' in lines[0] and "starlette" in lines[0]


def test_help_imports_neither_torch_nor_starlette():
    code = ("import sys; from typer.testing import CliRunner; from snncli.cli import app; "
            "r = CliRunner().invoke(app, ['serve', '--help']); assert r.exit_code == 0; "
            "assert '--port' in r.output; "
            "print(sorted(m for m in ('torch', 'starlette', 'uvicorn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_a_port_in_use_is_one_error_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run_snn("serve", "--checkpoint", "bundled", "--port", str(port))
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), out.stderr
    assert f"port {port}" in lines[0] and "in use" in lines[0]


def start_server(*args: str) -> tuple[subprocess.Popen, str]:
    """A real `snn serve` on a free port of 127.0.0.1: (the process, the page's address)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "snncli", "serve", "--checkpoint", "bundled", "--port", "0",
         *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines = []
    for line in process.stdout:
        lines.append(line)
        found = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        if found:
            return process, found.group(1)
        if len(lines) > 5:
            break
    process.kill()
    raise AssertionError(f"no address in {lines!r}: {process.stderr.read()}")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_serve_answers_and_stops_cleanly(stop):
    process, url = start_server()
    try:
        path = FILES[0]
        request = urllib.request.Request(url + "api/predict?steps=8", data=path.read_bytes(),
                                         headers={"Content-Type": "image/png"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            got = json.load(answer)
        assert got["prediction"] == int(path.name[0]) and len(got["raster"]) == 8
        with urllib.request.urlopen(url, timeout=30) as page:
            assert b"<canvas" in page.read()
        bad = urllib.request.Request(url + "api/predict", data=b"x",
                                     headers={"Content-Type": "image/png"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=30)
        assert refused.value.code == 422 and "error" in json.load(refused.value)
    finally:
        process.send_signal(stop)
        rest, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors
    assert errors == "" and rest.strip().endswith("stopped")


def test_the_mlp_answers_its_mean_outputs():
    """A model whose output layer does not spike: `spike_counts` null, the raster its outputs."""
    path, why = choose_checkpoint("bundled", "mlp")
    mlp = DigitReader(path, why)
    try:
        with TestClient(create_app(mlp)) as c:
            answer = post_bytes(c, GOOD, query="?steps=9").json()
    finally:
        mlp.close()
    assert answer["model"] == "mlp" and answer["prediction"] == 1
    assert answer["spike_counts"] is None and len(answer["scores"]) == 10
    raster = np.array(answer["raster"])
    assert raster.shape == (9, 10)
    assert np.allclose(raster.mean(0), answer["scores"], atol=1e-3)  # scores: the mean output
    assert [layer["name"] for layer in answer["layers"]] == ["lif1 (fc1)", "lif2 (fc2)"]


def test_a_content_length_that_is_not_a_number_is_refused(reader):
    """Checked before the body is read (the test client always sends a right one)."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/predict", "raw_path":
             b"/api/predict", "query_string": b"", "root_path": "", "scheme": "http",
             "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 9), "http_version": "1.1",
             "headers": [(b"content-type", b"image/png"), (b"content-length", b"12x")]}
    import anyio

    anyio.run(create_app(reader), scope, receive, send)
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"]) == {"error": "the Content-Length header is not a number"}


def test_a_host_other_machines_reach_is_warned_about(reader):
    info = reader.info()
    with listen("127.0.0.1", 0) as local:
        said = announcement(local, "127.0.0.1", "http://127.0.0.1:1/", info, "using x.pt")
    assert not any(warning for warning, _ in said)
    assert said[0] == (False, "using x.pt") and "127.0.0.1 only" in said[2][1]
    with socket.socket() as anywhere:
        anywhere.bind(("0.0.0.0", 0))  # never listening: nothing can reach it
        said = announcement(anywhere, "0.0.0.0", "http://127.0.0.1:1/", info, "using x.pt")
    assert [warning for warning, _ in said] == [False, False, True]
    assert said[2][1].startswith("listening on 0.0.0.0: anyone who can reach this machine")
