"""MkDocs hooks (``mkdocs.yml`` names this file): the parts of the documentation that are
generated, never hand-copied, so they cannot drift from the code.

A page holds a placeholder line and the build writes the content in its place:

- ``<!-- generated: settings -->``: every pytest flag and ini key, from the settings table
  (``onnxparity.config.SETTINGS``) — the same table the plugin registers its options from;
- ``<!-- generated: cli -->``: the ``onnxparity`` command's usage, from its argparse parser;
- ``<!-- generated: report-schema -->``: the JSON report's fields, from its JSON Schema;
- ``<!-- generated: marker -->``: the ``onnx_parity`` marker as pytest registers it;
- ``<!-- example-output: TEST_NAME -->``: the failure message of an example in ``examples/``
  that fails on purpose, from a fresh run of the examples (or, with ``ONNXPARITY_EXAMPLES_REPORT``
  set, from the JSON report such a run wrote). A placeholder naming a test that is not there
  stops the build;
- ``<!-- example-table: test_cnn.py ... -->``: the verdict table of those example files' items,
  from the same run.

Nothing here imports a framework: the examples run in a pytest subprocess.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_EXAMPLE = re.compile(r"^<!-- example-output: (\w+) -->$", re.MULTILINE)
_TABLE = re.compile(r"^<!-- example-table: ([\w./ -]+) -->$", re.MULTILINE)
_GENERATED = re.compile(r"^<!-- generated: ([\w-]+) -->$", re.MULTILINE)

_report: dict[str, Any] = {}  # the examples run's JSON report, read once


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    markdown = _GENERATED.sub(lambda m: _generated(m.group(1), page.file.src_path), markdown)
    if _EXAMPLE.search(markdown):
        markdown = _EXAMPLE.sub(lambda m: _example(m.group(1), page.file.src_path), markdown)
    if _TABLE.search(markdown):
        markdown = _TABLE.sub(lambda m: _table(m.group(1).split(), page.file.src_path), markdown)
    return markdown


def _generated(what: str, where: str) -> str:
    if what == "settings":
        return settings_table()
    if what == "cli":
        return cli_usage()
    if what == "report-schema":
        return schema_table()
    if what == "marker":
        return marker_doc()
    raise ValueError(f"{where}: unknown generated section {what!r} (settings, cli, report-schema, marker)")


def settings_table() -> str:
    """Every setting: flag, ini key, default, what it does."""
    from onnxparity.config import SETTINGS
    from onnxparity.variants import ALL_VARIANTS

    rows = ["| flag | ini key | default | what it does |", "|---|---|---|---|"]
    for s in SETTINGS:
        flag = f"`{s.flag}`" if s.switch else f"`{s.flag} {s.metavar or s.name.upper()}`"
        default = "off" if s.switch and not s.default else f"`{_cell(s.default)}`" if s.default not in (None, "") else ""
        help_text = s.describe(ALL_VARIANTS).replace("%%", "%")
        rows.append(f"| {flag} | {f'`{s.ini}`' if s.ini else '(flag only)'} | {default} | {_cell(help_text)} |")
    return "\n".join(rows)


def marker_doc() -> str:
    """The marker's signature as pytest registers it (``pytest --markers`` prints the same), and
    its arguments: each is :func:`onnxparity.check`'s argument of that name."""
    from onnxparity.plugin import MARKER_ARGS, MARKER_DOC

    arguments = ", ".join(f"`{a}`" for a in MARKER_ARGS)
    return (
        f"```text\n@pytest.mark.{MARKER_DOC}\n```\n\nIts arguments — {arguments} — mean what "
        "[`onnxparity.check`](api.md#onnxparity.check)'s arguments of those names mean; the fixture's "
        "`check(model, **overrides)` takes the same names and wins over the marker."
    )


def _cell(value: Any) -> str:
    text = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def cli_usage() -> str:
    """``onnxparity --help`` and each command's ``--help``, as argparse prints them."""
    import argparse

    from onnxparity.cli import _parser  # noqa: PLC2701 (the parser is the reference)

    os.environ["COLUMNS"] = "100"  # (argparse wraps to the terminal: a fixed width, the same page everywhere)
    parser = _parser()
    sections = [("onnxparity", parser)]
    for action in parser._actions:  # noqa: SLF001 (argparse keeps its sub-commands here)
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for name, sub in action.choices.items():
                sections.append((f"onnxparity {name}", sub))
                for inner in sub._actions:  # noqa: SLF001
                    if isinstance(inner, argparse._SubParsersAction):  # noqa: SLF001
                        sections += [(f"onnxparity {name} {n}", p) for n, p in inner.choices.items()]
    out = []
    for title, sub in sections:
        sub.prog = title
        out += [f"### `{title}`", "", "```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(out)


def schema_table() -> str:
    """The report's fields from its JSON Schema: path, type, description, nested objects flattened."""
    import importlib.resources

    schema = json.loads(importlib.resources.files("onnxparity.report").joinpath("schema.json").read_text())
    rows = ["| field | type | what it holds |", "|---|---|---|"]

    def resolved(node: dict) -> dict:
        ref = node.get("$ref", "")
        return schema["$defs"][ref.rsplit("/", 1)[-1]] if ref.startswith("#/$defs/") else node

    def walk(node: dict, path: str, depth: int) -> None:
        node = resolved(node)
        for name, prop in (node.get("properties") or {}).items():
            prop = {**resolved(prop), **{k: v for k, v in prop.items() if k != "$ref"}}
            here = f"{path}.{name}" if path else name
            kind = prop.get("type", "")
            kind = " or ".join(kind) if isinstance(kind, list) else kind
            if "const" in prop:
                kind = f"`{json.dumps(prop['const'])}`"
            elif "enum" in prop:
                kind = "one of " + ", ".join(f"`{json.dumps(v)}`" for v in prop["enum"])
            rows.append(f"| `{here}` | {kind} | {_cell(prop.get('description', ''))} |")
            if depth < 4:
                walk(prop, here, depth + 1)
                items = prop.get("items")
                if isinstance(items, dict):
                    walk(items, f"{here}[]", depth + 1)
                extra = prop.get("additionalProperties")
                if isinstance(extra, dict):
                    walk(extra, f"{here}.<key>", depth + 1)

    walk(schema, "", 0)
    return "\n".join(rows)


def _example(test: str, where: str) -> str:
    items = [i for i in _examples()["items"] if _test_of(i["nodeid"]) == test]
    found = [i["result"]["message"] for i in items if i["status"] == "failed" and (i.get("result") or {}).get("message")]
    if found:  # (paths under the checkout written relative to it, as a user's run prints them)
        return "```text\n" + found[0].rstrip().replace(ROOT + os.sep, "") + "\n```"
    if items:  # a runtime-specific failure the installed versions no longer show
        return f"*(`{test}` did not fail with the versions installed where this page was built.)*"
    raise ValueError(f"{where}: <!-- example-output: {test} --> names no test of examples/ that ran")


def _table(files: list[str], where: str) -> str:
    """The verdict table ``pytest --onnx-parity`` prints, for the examples' items of ``files``."""
    import collections

    from onnxparity.report import render

    report = _examples()
    items = [i for i in report["items"] if any(f"examples/{f}::" in i["nodeid"] for f in files)]
    if not items:
        raise ValueError(f"{where}: <!-- example-table: ... --> names no example file with items: {files}")
    summary = dict(collections.Counter(i["status"] for i in items))
    lines = render.terminal({**report, "items": items, "summary": summary})
    return "```text\n" + render.show(lines).rstrip() + "\n```"


def _test_of(nodeid: str) -> str:
    return nodeid.split("::")[-1].split("[")[0]


def _examples() -> dict[str, Any]:
    """The JSON report of a run of examples/ (those failing on purpose record their failure):
    ``ONNXPARITY_EXAMPLES_REPORT``'s, or a fresh run's; read once per build."""
    if _report:
        return _report
    path = os.environ.get("ONNXPARITY_EXAMPLES_REPORT")
    if not path:
        path = os.path.join(tempfile.mkdtemp(prefix="onnxparity-docs-"), "examples.json")
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--onnx-parity",
             f"--onnx-parity-report={path}", "examples/"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            check=False,  # some fail on purpose: that is what is shown
        )
    with open(path, encoding="utf-8") as f:
        _report.update(json.load(f))
    return _report
