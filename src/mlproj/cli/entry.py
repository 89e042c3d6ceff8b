"""The ``mlproj`` command's entry point: ``mlproj run`` without click when it can.

A plain ``mlproj run`` (the command sweeps, scripts and users start most) is parsed by
:mod:`mlproj.cli.run_options` and never imports click, which would cost about a quarter of a
no-op run. Every other command line, and any ``run`` that parser declines, goes to click.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    args = sys.argv[1:]
    # Shell completion (click's _MLPROJ_COMPLETE protocol) is click's job.
    if args[:1] == ["run"] and "_MLPROJ_COMPLETE" not in os.environ:
        from mlproj.cli.run_options import parse_run_args

        parsed = parse_run_args(args[1:])
        if parsed is not None:
            from mlproj.cli.run_exec import RunUsageError, execute_run
            from mlproj.cli.startup import guarded, replay_journals_quietly

            def run() -> None:
                replay_journals_quietly()
                execute_run(parsed.values, parsed.from_env)

            try:
                guarded(run, passthrough=(RunUsageError,))
                return
            except RunUsageError:
                pass  # click reads the command line again and reports it in its own form
    if "_MLPROJ_COMPLETE" in os.environ:
        from mlproj.cli.completion import use_fixed_shell_scripts

        use_fixed_shell_scripts()
    from mlproj.cli.main import cli

    cli(prog_name="mlproj")
