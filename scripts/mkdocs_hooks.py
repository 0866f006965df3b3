"""MkDocs hooks: pages generated at build time from the code, so that nothing is written twice.

- ``cli.md``: the command-line reference, rendered from ``aekit.cli.build_parser()``.
- ``api.md``: the Python API reference, one mkdocstrings entry per name in ``aekit.__all__``.

Both are added to the site as generated files (they never exist in ``docs/``); ``mkdocs.yml``
names them in its nav.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
from typing import Any

from mkdocs.structure.files import File, Files


def _example_is_examples() -> None:
    """Read a Google-style ``Example:`` section (aekit's docstrings) as griffe reads ``Examples:``:
    doctest blocks rendered as code, not Markdown. griffe keeps its section names in a private
    table; if it moves, the strict build fails on the examples' Markdown, loudly."""
    try:
        from griffe._internal.docstrings import google
        from griffe._internal.enumerations import DocstringSectionKind
    except ImportError:
        return
    google._section_kind.setdefault("example", DocstringSectionKind.examples)


_example_is_examples()

_CLI_INTRO = """# Command line

Generated from `aekit.cli.build_parser()` when the site is built, so it always matches
`aekit COMMAND --help`. Every command ends bad input with one line `aekit: error: ...` and exit
code 2. Shell completion: see [Getting started](getting-started.md#shell-completion).
"""

_API_INTRO = """# Python API

Everything in `aekit.__all__`, from the docstrings (generated when the site is built).

```python
import aekit
```
"""


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _option_cell(action: argparse.Action) -> str:
    if action.option_strings:
        names = ", ".join(f"`{s}`" for s in action.option_strings)
        if action.nargs != 0:
            metavar = action.metavar or action.dest.upper()
            if isinstance(metavar, tuple):
                metavar = " ".join(metavar)
            names += f" `{metavar}`"
        return names
    metavar = action.metavar or action.dest
    return f"`{metavar if isinstance(metavar, str) else ' '.join(metavar)}`"


def _help_cell(action: argparse.Action) -> str:
    parts = []
    if action.help and action.help != argparse.SUPPRESS:
        parts.append(
            action.help % {"default": action.default, "prog": ""} if "%(" in action.help else action.help
        )
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        parts.append("one of " + ", ".join(f"`{c}`" for c in action.choices))
    if action.required and action.option_strings:
        parts.append("required")
    if (
        action.option_strings
        and action.nargs != 0
        and action.default not in (None, argparse.SUPPRESS, False)
        and not isinstance(action, argparse._VersionAction)
    ):
        parts.append(f"default `{action.default}`")
    return _escape("; ".join(parts))


def _command_help(parser: argparse.ArgumentParser) -> dict[str, str]:
    helps: dict[str, str] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                helps[choice.dest] = choice.help or ""
    return helps


def _render_parser(
    parser: argparse.ArgumentParser, name: str, level: int, out: list[str], about: str
) -> None:
    out += [f"{'#' * level} `{name}`", ""]
    if about:
        out += [about[0].upper() + about[1:] + ".", ""]
    usage = parser.format_usage().strip()
    out += ["```text", usage.removeprefix("usage: "), "```", ""]
    for group in parser._action_groups:
        rows = [
            a
            for a in group._group_actions
            if a.help != argparse.SUPPRESS
            and not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
        ]
        if not rows:
            continue
        title = {"positional arguments": "Arguments", "options": "Options"}.get(
            group.title or "", group.title
        )
        out += [f"**{title}**", "", "| argument | what |", "|---|---|"]
        out += [f"| {_option_cell(a)} | {_help_cell(a)} |" for a in rows]
        out.append("")
    helps = _command_help(parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub_parser in action.choices.items():
                _render_parser(sub_parser, f"{name} {sub_name}", level + 1, out, helps.get(sub_name, ""))


def cli_markdown() -> str:
    """The CLI reference as Markdown, from ``aekit.cli.build_parser()``."""
    from aekit.cli import build_parser

    parser = build_parser()
    out = [_CLI_INTRO, "## Commands", "", "| command | what |", "|---|---|"]
    helps = _command_help(parser)
    out += [f"| [`{n}`](#aekit-{n}) | {_escape(h)} |" for n, h in helps.items()]
    out.append("")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub_parser in action.choices.items():
                _render_parser(sub_parser, f"aekit {sub_name}", 2, out, helps.get(sub_name, ""))
    return "\n".join(out) + "\n"


def api_markdown() -> str:
    """The API reference as Markdown: one mkdocstrings block per public name of ``aekit``."""
    aekit = importlib.import_module("aekit")
    out = [_API_INTRO]
    for name in aekit.__all__:
        obj: Any = getattr(aekit, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            path = f"{obj.__module__}.{obj.__qualname__}"
        elif name == "MODELS":
            out += _models_table(obj)
            continue
        else:
            raise ValueError(
                f"aekit.{name}: no way to document a {type(obj).__name__}; extend api_markdown()"
            )
        out += [f"## `aekit.{name}`", "", f"::: {path}", "    options:", "      show_root_heading: false", ""]
    return "\n".join(out)


def _models_table(models: dict[str, Any]) -> list[str]:
    out = [
        "## `aekit.MODELS`",
        "",
        "The registry of models: name -> spec (`cls`, `config_cls`, `summary`). `aekit.build_model(name)`",
        "and `aekit train --model NAME` read it; each model's settings are the fields of its config class.",
        "",
        "| name | what | config |",
        "|---|---|---|",
    ]
    for name, spec in models.items():
        cfg = spec.config_cls
        out.append(f"| `{name}` | {_escape(spec.summary)} | `{cfg.__module__}.{cfg.__qualname__}` |")
    return out + [""]


def on_files(files: Files, config: Any) -> Files:
    files.append(File.generated(config, "cli.md", content=cli_markdown()))
    files.append(File.generated(config, "api.md", content=api_markdown()))
    return files
