"""Every command the README shows works as written (issue 15): each line of its ``sh`` blocks is checked
against what it calls. ``crm-pipelines`` lines are parsed by the CLI itself (the subcommand exists, every
option and argument is accepted, nothing required is missing) without running them; ``make`` targets
exist in the Makefile; ``dagster`` lines name a subcommand whose ``--help`` lists each option used. What the
commands then do is tested where they are built (the demo by ``test_demo.py``, the benches by their tests)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from crm_pipelines.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def readme_commands() -> list[tuple[int, str]]:
    """(line number, command) for each command of the README's ``sh``/``bash`` blocks, comments and line
    continuations resolved."""
    commands, block, pending, start = [], False, "", 0
    for number, line in enumerate(README.read_text().splitlines(), start=1):
        if line.startswith("```"):
            block = line.strip("`").strip() in {"sh", "bash", "shell", "console"} and not block
            continue
        if not block:
            continue
        text = line.split(" #", 1)[0].rstrip() if not line.lstrip().startswith("#") else ""
        if not pending:
            start = number
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        command = (pending + text).strip()
        pending = ""
        if command:
            commands.append((start, command))
    return commands


def _words(command: str) -> list[str]:
    words = shlex.split(command)
    while words and (_ASSIGNMENT.match(words[0]) or words[0] == "export"):
        words = words[1:]  # VAR=value prefixes; an `export` line is only assignments
        if words and words[0] == "export":
            continue
    return words


def _check_crm_pipelines(args: list[str]) -> None:
    """Resolve the subcommands and parse the options as click would, without invoking anything."""
    ctx = main.make_context("crm-pipelines", list(args))
    command: click.Command = main
    while isinstance(command, click.Group):
        rest = ctx._protected_args + ctx.args if hasattr(ctx, "_protected_args") else ctx.protected_args + ctx.args
        if not rest:
            return
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None, f"no such command: {name}"
        ctx = sub.make_context(name, rest, parent=ctx)
        command = sub


def _check_make(args: list[str]) -> None:
    targets = set(re.findall(r"^([A-Za-z0-9_.-]+):", (ROOT / "Makefile").read_text(), re.M))
    for target in args or ["all"]:
        if "=" not in target:
            assert target in targets, f"make {target}: no such target in the Makefile"


def _check_dagster(args: list[str]) -> None:
    sub = [a for a in args if not a.startswith("-")][:1]
    shown = subprocess.run([str(Path(sys.executable).with_name("dagster")), *sub, "--help"],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    for option in (a.split("=", 1)[0] for a in args if a.startswith("-")):
        assert option in shown.stdout, f"dagster {' '.join(sub)} has no option {option}"


@pytest.mark.parametrize(("line", "command"), readme_commands(), ids=lambda v: str(v)[:60])
def test_readme_command_is_valid(line: int, command: str) -> None:
    words = _words(command)
    if not words:
        return  # only environment assignments
    program = Path(words[0]).name
    if program == "crm-pipelines":
        try:
            _check_crm_pipelines(words[1:])
        except click.ClickException as e:
            pytest.fail(f"README.md:{line}: {command}\n{e.format_message()}")
    elif program == "make":
        _check_make(words[1:])
    elif program == "dagster":
        _check_dagster(words[1:])
    else:
        pytest.fail(f"README.md:{line}: no check for `{program}`; add one here or show the command differently")


def test_the_readme_shows_the_two_commands() -> None:
    """The quickstart's two commands: the demo and the tests."""
    shown = {c for _, c in readme_commands()}
    assert "make demo" in shown and "make test" in shown
