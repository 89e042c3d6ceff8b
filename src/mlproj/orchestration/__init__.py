"""Orchestration: sweeps, pipelines, retries and run reuse, on one engine.

``scheduler`` runs child runs under a parent run (concurrency limit, retries, cancel of the
whole tree, GPUs); ``run_key`` says when two runs would give the same result; ``sweeps`` and
``pipelines`` are plans the scheduler runs. Nothing here keeps state outside the tracking store
(Optuna's study aside, kept beside it).
"""
