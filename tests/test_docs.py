"""Every command has help with a one-line summary and an example, and is listed in README.md.

Walks `cli.commands`, so a command added later without docs fails here, named in the test id.
"""
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import cachesim
from cachesim.cli import cli
from cachesim.traces import format_names

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
COMMANDS = sorted(cli.commands)


def _section(text: str, heading: str) -> str:
    """The body of the `## heading` section (up to the next `## ` heading)."""
    match = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    return match.group(1) if match else ""


COMMANDS_SECTION = _section(README, "Commands")


def test_commands_are_registered():
    # The walk below is only worth something if it walks the commands we know of.
    assert {"replay", "convert", "sweep", "memory", "analyze", "mrc", "allocate", "generate",
            "train", "report"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_command_help_has_summary_and_example(name):
    result = CliRunner().invoke(cli, [name, "--help"], prog_name="cachesim")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: cachesim {name} ")
    doc = (cli.commands[name].help or "").strip()
    summary = doc.split("\n\n")[0]
    assert summary and "\n" not in summary, (
        f"`cachesim {name}`: the docstring must open with a one-line summary, found {summary!r}")
    assert summary.endswith("."), f"`cachesim {name}`: end the summary with a full stop"
    assert re.search(rf"^\s*Example: cachesim {name} ", result.output, re.M), (
        f"`cachesim {name} --help` has no 'Example: cachesim {name} ...' line")


@pytest.mark.parametrize("name", COMMANDS)
def test_command_in_readme_commands_section(name):
    assert COMMANDS_SECTION, "README.md has no '## Commands' section"
    assert f"`cachesim {name}" in COMMANDS_SECTION, (
        f"`cachesim {name}` is not in README.md's '## Commands' section: add a line for it")


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_help(name):
    cmd = cli.commands[name]
    help_text = CliRunner().invoke(cli, [name, "--help"], terminal_width=200).output
    for param in cmd.params:
        if not isinstance(param, click.Option):
            continue
        for opt in param.opts:
            assert opt in help_text or opt in README, f"cachesim {name} {opt}: not documented"
        assert (param.help or "").strip(), (
            f"cachesim {name} {param.opts[0]}: the option has no help text")


def test_group_options_have_help():
    for param in cli.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert (param.help or "").strip() or param.name == "version", param.opts


@pytest.mark.parametrize("fmt", format_names())
def test_format_in_readme(fmt):
    assert f"`{fmt}`" in README, f"trace format {fmt!r} is not described in README.md"


@pytest.mark.parametrize("policy", cachesim.policy_names())
def test_policy_in_readme(policy):
    assert f"`{policy}`" in README, f"policy {policy!r} is not described in README.md"
