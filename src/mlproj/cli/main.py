"""The ``mlproj`` command line.

Sub-commands other than ``run`` live in their own modules and are imported only when used,
so ``mlproj --help`` and ``mlproj run`` stay fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import click

from mlproj import __version__
from mlproj.cli.option_table import FLAG, MULTIPLE, SWITCH, Option, UsageProblem
from mlproj.cli.run_exec import execute_run
from mlproj.cli.run_options import RUN_OPTIONS
from mlproj.cli.sweep import SWEEP_HELP, SWEEP_OPTIONS, execute_sweep

# name -> "module:attribute" of a click command, imported on first use.
_LAZY_COMMANDS = {
    "runs": ("mlproj.cli.runs:runs", "List, inspect, follow, cancel and reap runs."),
    "experiments": ("mlproj.cli.runs:experiments", "List the experiments of a tracking store."),
    "envs": ("mlproj.cli.envs:envs_group", "List and prune cached environments."),
    "check": (
        "mlproj.cli.check:check_command",
        "Find mistakes in an MLproject, without running it.",
    ),
    "ui": ("mlproj.cli.ui:ui_command", "Browse the runs in MLflow's own UI."),
    "sources": ("mlproj.cli.sources:sources_group", "List and clear cached Git repos, archives."),
    "pipeline": ("mlproj.cli.pipeline:pipeline_group", "Run, resume and show MLproject pipelines."),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _LAZY_COMMANDS:
            module_name, attr = _LAZY_COMMANDS[cmd_name][0].split(":")
            command: click.Command = getattr(importlib.import_module(module_name), attr)
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        from mlproj.cli.startup import guarded

        passthrough = (click.ClickException, click.exceptions.Exit, click.Abort)
        return guarded(lambda: super(_LazyGroup, self).invoke(ctx), passthrough)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Describe lazy commands without importing them.
        rows = [(name, cmd.get_short_help_str()) for name, cmd in self.commands.items()]
        rows += [(name, help_) for name, (_, help_) in _LAZY_COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(sorted(rows))


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlproj")
def cli() -> None:
    """Run MLflow Projects reproducibly and fast.

    \b
    Examples:
      mlproj run examples/hello -P alpha=0.3
      mlproj runs list
      mlproj runs show 82fc817e

    A run id may be shortened to a unique prefix. Shell completion: docs/completion.md.
    """
    from mlproj.cli.startup import replay_journals_quietly

    # Run updates kept while a tracking store was down are sent as soon as mlproj runs again.
    replay_journals_quietly()


def _complete_entry_point(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[click.shell_completion.CompletionItem]:
    from mlproj.cli.completion import entry_point_items

    # Click leaves URI unparsed when the option being completed has no value yet; the word is
    # then among the unparsed arguments.
    uri = ctx.params.get("uri") or next(iter(ctx.args), None)
    return entry_point_items(uri, incomplete)


def _complete_run_id(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[click.shell_completion.CompletionItem]:
    from mlproj.cli.completion import complete_run_id

    return complete_run_id(ctx, param, incomplete)


def _click_option(option: Option) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click declaration of an option declared as data (run_options, sweep)."""
    settings: dict[str, Any] = {"default": option.default, "help": option.help}
    if option.kind == MULTIPLE:
        settings["multiple"] = True
    elif option.kind == FLAG:
        settings["is_flag"] = True
    if option.envvar:
        settings["envvar"] = option.envvar
    if option.metavar:
        settings["metavar"] = option.metavar
    if option.show_default:
        settings["show_default"] = True
    if (value_type := _click_type(option)) is not None:
        settings["type"] = value_type
    if option.dest == "entry_point":
        settings["shell_complete"] = _complete_entry_point
    elif option.dest in ("run_id", "resume_id"):
        settings["shell_complete"] = _complete_run_id
    declarations = list(option.flags)
    if option.kind == SWITCH:
        declarations = ["/".join((*option.flags, *option.off_flags))]
    return click.option(*declarations, option.dest, **settings)


def _click_type(option: Option) -> Any:
    """click's type for a number or a choice; None for text."""
    if option.choices is not None:
        return click.Choice(option.choices)
    if option.number is None:
        return None
    kind, minimum, excluded = option.number
    if minimum == -float("inf"):
        return int if kind == "int" else float
    if kind == "int":
        return click.IntRange(min=int(minimum))
    return click.FloatRange(min=minimum, min_open=excluded)


def _with_options(
    options: tuple[Option, ...],
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):  # decorators apply bottom-up: keep the declared order
            command = _click_option(option)(command)
        return command

    return decorate


def _from_env(ctx: click.Context, values: dict[str, Any]) -> frozenset[str]:
    source = click.core.ParameterSource.ENVIRONMENT
    return frozenset(name for name in values if ctx.get_parameter_source(name) == source)


@cli.command("run", short_help="Run a project: a folder, Git repository or archive.")
@click.argument("uri")
@_with_options(RUN_OPTIONS)
@click.pass_context
def run_command(ctx: click.Context, /, **values: Any) -> None:
    """Run the project at URI: a folder, a Git repository (URI#subdir) or an archive.

    \b
    Examples:
      mlproj run . -P alpha=0.5
      mlproj run https://github.com/org/repo#examples/train -v v1.2 -e train
      mlproj run project.tar.gz --env-manager uv --timeout 3600

    Exit codes: 0 the run finished, 1 it failed or could not start (the error says why),
    2 wrong command-line usage, 130 Ctrl-C and 143 SIGTERM (the run is then KILLED).
    """
    try:
        execute_run(values, _from_env(ctx, values))
    except UsageProblem as exc:
        raise click.UsageError(str(exc)) from None


@cli.command(
    "sweep",
    help=SWEEP_HELP,
    short_help="Run an entry point over a grid, random draws or Optuna.",
)
@click.argument("uri", required=False)
@_with_options(SWEEP_OPTIONS)
@click.pass_context
def sweep_command(ctx: click.Context, /, **values: Any) -> None:
    try:
        execute_sweep(values, _from_env(ctx, values))
    except UsageProblem as exc:
        raise click.UsageError(str(exc)) from None


def main() -> None:
    cli(prog_name="mlproj")
