"""How fast `snn serve` answers a drawing, alone and with 8 clients drawing at once.

Starts a real `snn serve` (the bundled csnn unless --checkpoint says otherwise) on a free port
of 127.0.0.1 and sends it what the page sends while someone draws: a 280x280 PNG of white
strokes on black (drawings of the ten digits, in turn), POSTed as image/png to
/api/predict over a kept-alive connection. Measures
  * one drawing's round trip (request sent -> JSON read and parsed), --requests in a row
    after a warm-up: median, 90th percentile, mean;
  * --clients threads each drawing as fast as answers come, for --seconds: requests,
    errors (any answer but 200 with a prediction, or no answer), median and 90th percentile
    latency, requests per second;
  * with --profile, where one request's time goes inside the server's work, in this process
    (no HTTP): PNG decode and preparation, the network at its time steps, the JSON.
Only 127.0.0.1 is ever contacted; the load is bounded by --clients and --seconds.

Usage:
  python benchmarks/bench_serve.py [--checkpoint bundled] [--requests 200] [--clients 8]
      [--seconds 30] [--profile]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# Strokes of each digit on a 280x280 pad, as someone draws them (pad pixels).
STROKES = {
    0: [[(140, 50), (90, 80), (80, 140), (95, 210), (140, 235), (190, 205), (200, 140),
         (185, 75), (140, 50)]],
    1: [[(140, 40), (140, 240)]],
    2: [[(85, 90), (120, 55), (175, 60), (190, 110), (150, 165), (85, 230), (205, 230)]],
    3: [[(85, 60), (180, 60), (130, 130), (185, 165), (175, 220), (130, 240), (85, 220)]],
    4: [[(170, 240), (170, 40), (70, 170), (210, 170)]],
    5: [[(195, 50), (100, 50), (90, 130), (160, 125), (195, 175), (170, 230), (90, 225)]],
    6: [[(180, 45), (120, 90), (90, 170), (120, 235), (180, 215), (180, 160), (120, 150),
         (95, 180)]],
    7: [[(70, 60), (215, 62), (140, 235)]],
    8: [[(140, 140), (95, 100), (140, 50), (185, 100), (140, 140), (90, 185), (140, 235),
         (190, 185), (140, 140)]],
    9: [[(185, 100), (140, 55), (95, 95), (130, 140), (185, 100), (180, 240)]],
}


def canvas_png(digit: int) -> bytes:
    """The pad as the page sends it: white strokes 20 pixels wide on black, as PNG."""
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    draw = ImageDraw.Draw(image)
    for stroke in STROKES[digit]:
        draw.line(stroke, fill=(255, 255, 255, 255), width=20, joint="curve")
        for x, y in (stroke[0], stroke[-1]):
            draw.ellipse((x - 10, y - 10, x + 10, y + 10), fill=(255, 255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def start_server(checkpoint: str) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "snncli", "serve", "--checkpoint", checkpoint, "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    for line in process.stdout:
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if found:
            threading.Thread(target=process.stdout.read, daemon=True).start()  # drain it
            return process, int(found.group(1))
    raise SystemExit(f"snn serve did not start (exit code {process.wait()})")


def round_trip(connection: http.client.HTTPConnection, body: bytes) -> tuple[float, dict | None]:
    """(seconds from sending to the parsed JSON, the answer or None when it was an error)."""
    start = time.perf_counter()
    connection.request("POST", "/api/predict", body=body, headers={"Content-Type": "image/png"})
    answer = connection.getresponse()
    payload = json.loads(answer.read())
    seconds = time.perf_counter() - start
    return seconds, payload if answer.status == 200 and "prediction" in payload else None


def sequential(port: int, drawings: list[bytes], count: int) -> tuple[list[float], int]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for i in range(10):  # warm-up
        round_trip(connection, drawings[i % len(drawings)])
    times, right = [], 0
    for i in range(count):
        seconds, answer = round_trip(connection, drawings[i % len(drawings)])
        times.append(seconds)
        right += answer is not None and answer["prediction"] == i % len(drawings)
    connection.close()
    return times, right


def concurrent(port: int, drawings: list[bytes], clients: int, seconds: float) -> dict:
    stop = time.perf_counter() + seconds
    times: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = index
        while time.perf_counter() < stop:
            try:
                took, answer = round_trip(connection, drawings[i % len(drawings)])
                failed = answer is None
            except (OSError, http.client.HTTPException, ValueError):
                took, failed = None, True
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            with lock:
                if failed:
                    errors[0] += 1
                if took is not None:
                    times.append(took)
            i += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return {"requests": len(times), "errors": errors[0], "seconds": elapsed, "times": times}


def profile(checkpoint: str, drawings: list[bytes], count: int = 100) -> dict:
    """Median milliseconds of each part of the server's work for one drawing, in this
    process: PNG decode + preparation, the network (with its firing-rate hooks), JSON."""
    from snncli.choice import choose_checkpoint
    from snncli.predict import prepare_image
    from snncli.preprocess import open_image
    from snncli.serve.service import DigitReader

    path, why = choose_checkpoint(checkpoint, None)
    reader = DigitReader(path, why)
    parts: dict[str, list[float]] = {"decode": [], "prepare": [], "network": [], "json": []}
    for i in range(count):
        data = drawings[i % len(drawings)]
        t0 = time.perf_counter()
        open_image(data, "<upload>")
        t1 = time.perf_counter()
        digit = prepare_image(data, "<upload>")
        t2 = time.perf_counter()
        answer = reader._simulate(digit, "<upload>", reader.steps)
        t3 = time.perf_counter()
        json.dumps(answer)
        t4 = time.perf_counter()
        parts["decode"].append(t1 - t0)
        parts["prepare"].append(t2 - t1 - (t1 - t0))  # preparation after decoding
        parts["network"].append(t3 - t2)
        parts["json"].append(t4 - t3)
    reader.close()
    return {k: 1000 * statistics.median(v) for k, v in parts.items()}


def ms(values: list[float], q: float) -> float:
    return 1000 * float(np.quantile(values, q))


def cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        return re.search(r"model name\s*:\s*(.*)", text).group(1).strip()
    except (OSError, AttributeError):
        return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="bundled")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.clients <= 32 or not 0 < args.seconds <= 120:
        parser.error("--clients must be 1-32 and --seconds at most 120 (a bounded load)")

    drawings = [canvas_png(d) for d in range(10)]
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"CPU: {cpu_name()}, {cores} cores, torch {torch.__version__} "
          f"({torch.backends.cpu.get_cpu_capability()}), {time.strftime('%Y-%m-%d')}")
    if args.profile:
        parts = profile(args.checkpoint, drawings)
        print("one drawing in the server's work (median ms): " + ", ".join(
            f"{k} {v:.2f}" for k, v in parts.items()) + f"; total {sum(parts.values()):.2f}")

    process, port = start_server(args.checkpoint)
    try:
        times, right = sequential(port, drawings, args.requests)
        load = concurrent(port, drawings, args.clients, args.seconds)
    finally:
        process.terminate()
        process.wait(timeout=30)
    rows = [
        ("measure", "requests", "errors", "median ms", "p90 ms", "mean ms", "requests/s"),
        ("one drawing at a time", str(len(times)), str(len(times) - right) + " misread",
         f"{ms(times, 0.5):.1f}", f"{ms(times, 0.9):.1f}",
         f"{1000 * statistics.mean(times):.1f}", f"{len(times) / sum(times):.1f}"),
        (f"{args.clients} clients for {args.seconds:g} s", str(load["requests"]),
         str(load["errors"]), f"{ms(load['times'], 0.5):.1f}", f"{ms(load['times'], 0.9):.1f}",
         f"{1000 * statistics.mean(load['times']):.1f}",
         f"{load['requests'] / load['seconds']:.1f}"),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(w) if j == 0 else cell.rjust(w)
                        for j, (cell, w) in enumerate(zip(row, widths, strict=True))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    if load["errors"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
