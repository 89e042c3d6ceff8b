"""``mlproj check``: lint an MLproject without running it."""

from __future__ import annotations

import json
import sys

import click


@click.command("check", short_help="Find mistakes in an MLproject without running it.")
@click.argument("uri", default=".")
@click.option("-e", "--entry-point", default=None, help="Check only this entry point.")
@click.option("-v", "--version", default=None, help="Git branch, tag or commit of a Git URI.")
@click.option(
    "--json", "as_json", is_flag=True, default=False, help="Print JSON, for editors and CI."
)
def check_command(uri: str, entry_point: str | None, version: str | None, as_json: bool) -> None:
    """Report everything `mlproj run` would refuse, for every entry point, and the mistakes
    people often make in MLproject files, each with its file and line.

    \b
    Examples:
      mlproj check
      mlproj check path/to/project -e train
      mlproj check https://github.com/org/repo#sub --json

    Exit codes: 0 no errors (warnings allowed), 1 errors found, 2 wrong usage.
    """
    from mlproj.lint import check_project, summary
    from mlproj.sources import fetch_project

    def quiet(_: str) -> None:
        return None

    fetched = fetch_project(uri, version, log=quiet if as_json else _to_stderr)
    problems = check_project(fetched.directory, entry_point)
    errors, warnings = summary(problems)
    if as_json:
        report = {
            "project": str(fetched.directory),
            "errors": errors,
            "warnings": warnings,
            "problems": [p.to_json() for p in problems],
        }
        click.echo(json.dumps(report, indent=2))
    else:
        for problem in problems:
            place = (
                f"{problem.file}:{problem.line}"
                if problem.line
                else f"{problem.file or fetched.directory}"
            )
            key = f"{problem.key}: " if problem.key else ""
            click.echo(f"{place}: {problem.severity}: {key}{problem.message} [{problem.code}]")
        noun = "error" if errors == 1 else "errors"
        wnoun = "warning" if warnings == 1 else "warnings"
        click.echo(f"{errors} {noun}, {warnings} {wnoun} in {fetched.directory}", err=True)
    sys.exit(1 if errors else 0)


def _to_stderr(line: str) -> None:
    click.echo(f"mlproj: {line}", err=True)
