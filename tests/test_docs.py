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
from cachesim.io import format_names

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


def _sections(text: str) -> list[str]:
    """README.md cut at every `##`/`###` heading (each piece starts with its heading)."""
    return re.split(r"^(?=#{2,3} )", text, flags=re.M)


def command_text(name: str) -> str:
    """README.md's text for `cachesim name`: every section that names the command (of the
    Commands table, only the command's own row)."""
    own = re.compile(rf"cachesim(?: --plugin \S+)? {name}\b")
    return "\n".join("\n".join(line for line in s.splitlines()
                               if not line.startswith("| `cachesim ") or own.search(line))
                     for s in _sections(README) if own.search(s))


def _long_names(param: click.Option) -> list[str]:
    return [o for o in param.opts + param.secondary_opts if o.startswith("--")]


def _mentioned(opt: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", text) is not None


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_help(name):
    cmd = cli.commands[name]
    for param in cmd.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert (param.help or "").strip(), (
                f"cachesim {name} {param.opts[0]}: the option has no help text")


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_in_readme_for_its_command(name):
    text = command_text(name)
    assert text, f"README.md has no section that shows `cachesim {name}`"
    missing = [" / ".join(_long_names(p)) for p in cli.commands[name].params
               if isinstance(p, click.Option) and not p.hidden and _long_names(p)
               and not any(_mentioned(o, text) for o in _long_names(p))]
    assert not missing, (f"cachesim {name}: option(s) {', '.join(missing)} not in README.md's "
                         f"sections on `cachesim {name}`: describe them there")


def test_option_check_catches_an_undocumented_option():
    assert _mentioned("--ways", command_text("replay"))
    assert not _mentioned("--way", command_text("replay"))   # a prefix is not a mention
    assert not _mentioned("--no-such-option", command_text("replay"))
    # another command's row of the Commands table does not document this command's options
    assert "`cachesim memory --rows" in README and "| `cachesim memory" not in command_text("mrc")


def test_group_options_have_help():
    for param in cli.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert (param.help or "").strip() or param.name == "version", param.opts
            assert any(_mentioned(o, COMMANDS_SECTION) for o in _long_names(param)), (
                f"cachesim {param.opts[0]}: not in README.md's '## Commands' section")


@pytest.mark.parametrize("fmt", format_names())
def test_format_in_readme(fmt):
    assert f"`{fmt}`" in README, f"trace format {fmt!r} is not described in README.md"


@pytest.mark.parametrize("policy", cachesim.policy_names())
def test_policy_in_readme(policy):
    assert f"`{policy}`" in README, f"policy {policy!r} is not described in README.md"
