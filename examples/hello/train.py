"""A toy training loop: logs params and metrics to the run mlproj opened, when MLflow is
installed, and always writes a small artifact-like summary to stdout."""

import argparse
import math
import os

parser = argparse.ArgumentParser()
parser.add_argument("--alpha", type=float, required=True)
parser.add_argument("--epochs", type=int, required=True)
parser.add_argument("--greeting", required=True)
args = parser.parse_args()

print(f"{args.greeting}! training with alpha={args.alpha} for {args.epochs} epochs")
print(f"run id: {os.environ.get('MLFLOW_RUN_ID')}")

losses = [math.exp(-(epoch + 1) * (1 - args.alpha)) for epoch in range(args.epochs)]
for epoch, loss in enumerate(losses):
    print(f"epoch {epoch}: loss={loss:.4f}")

try:
    import mlflow
except ImportError:
    print("mlflow is not installed here; metrics were only printed")
else:
    # MLFLOW_RUN_ID / MLFLOW_TRACKING_URI from mlproj make this log into mlproj's run.
    with mlflow.start_run():
        for epoch, loss in enumerate(losses):
            mlflow.log_metric("loss", loss, step=epoch)
        mlflow.log_text(f"final loss {losses[-1]:.4f}\n", "summary.txt")
