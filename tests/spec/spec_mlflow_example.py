"""The entry points of MLflow's own example test project (greeter, path, uri and int
parameters), which several spec tests load, render and compare with MLflow."""

from __future__ import annotations

# Its first two entry points alone.
GREETER_ENTRY_POINTS = """\
entry_points:
  main:
    command: "echo 'Main entry point'"
  greeter:
    parameters:
      greeting: {type: string, default: "hi"}
      name: string
    command: "python greeter.py {greeting} {name}"
"""

MLFLOW_EXAMPLE_ENTRY_POINTS = (
    GREETER_ENTRY_POINTS
    + """\
  line_count:
    parameters:
      path: path
    command: "cat {path} | wc -l"
  download_uri:
    parameters:
      uri: uri
    command: "curl {uri} | wc -l"
  sleep:
    parameters:
      duration: int
    command: "sleep {duration}"
"""
)
