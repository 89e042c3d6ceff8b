"""The pipeline's steps: prepare a data set, fit a line to it, evaluate the fit.

Each step writes its output as an artifact of its own run; the next step gets the artifact's
URI as a `path` parameter (mlproj copies it to a local file)."""

from __future__ import annotations

import argparse
import csv
import json
import random
import tempfile
from pathlib import Path

from tracking import log_artifact, log_metric

parser = argparse.ArgumentParser()
parser.add_argument("step", choices=["prepare", "fit", "evaluate"])
parser.add_argument("--rows", type=int)
parser.add_argument("--noise", type=float)
parser.add_argument("--data")
parser.add_argument("--lr", type=float)
parser.add_argument("--model")
parser.add_argument("--model-run")
args = parser.parse_args()
out = Path(tempfile.mkdtemp())


def read(path: str) -> list[tuple[float, float]]:
    with open(path, newline="") as handle:
        return [(float(x), float(y)) for x, y in csv.reader(handle)]


if args.step == "prepare":
    rng = random.Random(0)
    with (out / "data.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        for _ in range(args.rows):
            x = rng.uniform(-1, 1)
            writer.writerow([x, 3.0 * x + 0.5 + rng.gauss(0, args.noise)])
    log_artifact(out / "data.csv", "data")
    print(f"wrote {args.rows} rows")
elif args.step == "fit":
    data = read(args.data)
    a = b = 0.0
    for _ in range(200):
        grad_a = sum(2 * (a * x + b - y) * x for x, y in data) / len(data)
        grad_b = sum(2 * (a * x + b - y) for x, y in data) / len(data)
        a, b = a - args.lr * grad_a, b - args.lr * grad_b
    (out / "model.json").write_text(json.dumps({"a": a, "b": b}))
    log_artifact(out / "model.json", "model")
    print(f"fitted a={a:.3f} b={b:.3f}")
else:
    model = json.loads(Path(args.model).read_text())
    data = read(args.data)
    mse = sum((model["a"] * x + model["b"] - y) ** 2 for x, y in data) / len(data)
    log_metric("mse", mse)
    print(f"model of run {args.model_run}: mse={mse:.5f}")
