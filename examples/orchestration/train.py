"""Fit y = a*x + b to synthetic data by mini-batch gradient descent; log the final loss."""

from __future__ import annotations

import argparse
import math
import random

from tracking import log_metric

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--epochs", type=int, required=True)
parser.add_argument("--batch", type=int, required=True)
parser.add_argument("--seed", type=int, required=True)
args = parser.parse_args()

rng = random.Random(args.seed)
xs = [rng.uniform(-1, 1) for _ in range(256)]
data = [(x, 3.0 * x + 0.5 + rng.gauss(0, 0.1)) for x in xs]
a = b = 0.0
for _ in range(args.epochs):
    rng.shuffle(data)
    for start in range(0, len(data), args.batch):
        chunk = data[start : start + args.batch]
        grad_a = sum(2 * (a * x + b - y) * x for x, y in chunk) / len(chunk)
        grad_b = sum(2 * (a * x + b - y) for x, y in chunk) / len(chunk)
        a, b = a - args.lr * grad_a, b - args.lr * grad_b
loss = sum((a * x + b - y) ** 2 for x, y in data) / len(data)
if math.isnan(loss) or loss > 1e6:  # diverged
    loss = 1e6
print(f"a={a:.3f} b={b:.3f} loss={loss:.5f}")
log_metric("loss", loss)
