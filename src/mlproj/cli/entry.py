"""The ``mlproj`` command's entry point: ``mlproj run`` and ``mlproj sweep`` without click
when they can.

A plain ``mlproj run`` or ``mlproj sweep`` (the commands scripts, schedulers and users start
most) is parsed from its option table (:mod:`mlproj.cli.option_table`) and never imports click,
which would cost about a quarter of a no-op run. Every other command line, and any that the
table's parser declines, goes to click.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    args = sys.argv[1:]
    # Shell completion (click's _MLPROJ_COMPLETE protocol) is click's job.
    if args[:1] in (["run"], ["sweep"]) and "_MLPROJ_COMPLETE" not in os.environ:
        from mlproj.cli.option_table import UsageProblem
        from mlproj.cli.startup import guarded, replay_journals_quietly

        if args[0] == "run":
            from mlproj.cli.run_exec import execute_run as execute
            from mlproj.cli.run_options import parse_run_args as parse
        else:
            from mlproj.cli.sweep import execute_sweep as execute
            from mlproj.cli.sweep import parse_sweep_args as parse
        parsed = parse(args[1:])
        if parsed is not None:
            values, from_env = parsed.values, parsed.from_env

            def command() -> None:
                replay_journals_quietly()
                execute(values, from_env)

            try:
                guarded(command, passthrough=(UsageProblem,))
                return
            except UsageProblem:
                pass  # click reads the command line again and reports it in its own form
    if "_MLPROJ_COMPLETE" in os.environ:
        from mlproj.cli.completion import use_fixed_shell_scripts

        use_fixed_shell_scripts()
    from mlproj.cli.main import cli

    cli(prog_name="mlproj")
