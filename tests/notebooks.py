"""Read the notebook that `colabssh bootstrap --notebook` writes as Colab reads it: its form cell and the form's fields.

Colab's form syntax, as Colab's own Forms notebook (colab.research.google.com/notebooks/forms.ipynb) writes it
and as parsers of it (ipyform's) read it:

- the title is the cell's first line, ``#@title TEXT`` (Colab now also writes ``# @title``), optionally followed
  by ``{ display-mode: "form" }``: the cell then shows only the form (the cell's metadata says
  ``"cellView": "form"``);
- a field is a one-line, top-level assignment ``NAME = VALUE`` whose comment starts ``#@param`` (or
  ``# @param``), then either a list of choices ``[...]`` (a dropdown; an optional ``{type:"raw"}`` or
  ``{allow-input: true}`` may follow) or an object ``{type:"..."}`` (string, raw, boolean, integer, number,
  date, slider; keys with or without quotes). A dropdown's VALUE is one of its choices, unless allow-input;
- ``#@markdown TEXT`` lines are shown in the form as they stand;
- when the user edits a field, Colab rewrites VALUE on that one line, and nothing else of the cell.

``PARAM_LINE`` is that rule as one regular expression; ``form_fields`` checks each field's value against its type.
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

TITLE_LINE = re.compile(r'^#\s?@title (?P<title>.+?)(?:\s*\{\s*display-mode:\s*"(?P<mode>form|code|both)"\s*\})?$')
PARAM_LINE = re.compile(r'^(?P<name>[A-Za-z_]\w*)\s*=\s*(?P<value>[^#]+?)\s+#\s?@param\b\s*'
                        r'(?P<choices>\[[^\]]*\])?\s*(?P<config>\{[^}]*\})?\s*$')
CONFIG_ENTRY = re.compile(r'"?(?P<key>[\w-]+)"?\s*:\s*(?P<value>"[^"]*"|[^,}\s]+)')
TYPES = {"string": str, "date": str, "raw": object, "boolean": bool, "integer": int, "number": (int, float),
         "slider": (int, float)}


@dataclass
class FormField:
    name: str
    value: object  # as Python reads VALUE
    type: str  # one of TYPES
    choices: list[object] | None  # a dropdown's, else None
    line: int  # its index among the cell's lines


def read_notebook(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def form_cell(notebook: dict) -> dict:
    """The notebook's one form cell (a code cell whose metadata says ``cellView: form``)."""
    cells = [cell for cell in notebook["cells"]
             if cell["cell_type"] == "code" and cell.get("metadata", {}).get("cellView") == "form"]
    assert len(cells) == 1, f"expected one form cell, found {len(cells)}"
    return cells[0]


def cell_source(cell: dict) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def form_cell_source(path: Path) -> str:
    """The form cell's code, as Colab runs it (write it to a file and run it with python3 off Colab)."""
    return cell_source(form_cell(read_notebook(path)))


def write_form_cell(path: Path, dest: Path) -> Path:
    """The form cell of the notebook at PATH written to DEST (a script for ``tests.cellrunner.start_cell``)."""
    dest.write_text(form_cell_source(path), encoding="utf-8")
    return dest


def _config(text: str | None) -> dict[str, object]:
    if not text:
        return {}
    return {m["key"]: json.loads(m["value"]) if m["value"].startswith('"') else m["value"]
            for m in CONFIG_ENTRY.finditer(text)}


def _param_comment_lines(source: str) -> list[int]:
    """The indexes of the lines whose comment is a ``#@param`` (comments, not text in the payload's strings)."""
    return [token.start[0] - 1 for token in tokenize.generate_tokens(io.StringIO(source).readline)
            if token.type == tokenize.COMMENT and re.match(r"#\s?@param\b", token.string)]


def form_fields(source: str) -> dict[str, FormField]:
    """Every field of the form, checked as Colab checks it; AssertionError on a line Colab would not show."""
    fields: dict[str, FormField] = {}
    top_level = {node.lineno - 1 for node in ast.parse(source).body if isinstance(node, ast.Assign)}
    lines = source.splitlines()
    for index in _param_comment_lines(source):
        line = lines[index]
        match = PARAM_LINE.match(line)
        assert match, f"not a Colab form field: {line!r}"
        assert index in top_level, f"a form field must be a top-level assignment: {line!r}"
        value = ast.literal_eval(match["value"])
        config = _config(match["config"])
        choices = ast.literal_eval(match["choices"]) if match["choices"] else None
        kind = str(config.get("type") or ("string" if choices is not None else "raw"))
        assert kind in TYPES, f"Colab has no field type {kind!r}: {line!r}"
        if kind != "raw":
            assert isinstance(value, TYPES[kind]) and (kind == "boolean") == isinstance(value, bool), \
                f"{match['name']}: {value!r} is not a {kind}"
        if choices is not None and not config.get("allow-input"):
            assert value in choices, f"{match['name']}: {value!r} is not one of {choices}"
        fields[match["name"]] = FormField(match["name"], value, kind, choices, index)
    return fields


def set_form_field(source: str, name: str, value: object) -> str:
    """SOURCE as Colab rewrites it when the user sets the field NAME to VALUE in the form."""
    field = form_fields(source)[name]
    lines = source.split("\n")
    match = PARAM_LINE.match(lines[field.line])
    assert match is not None
    literal = json.dumps(value) if isinstance(value, str) else repr(value)
    lines[field.line] = lines[field.line][:match.start("value")] + literal + lines[field.line][match.end("value"):]
    return "\n".join(lines)


def title(source: str) -> tuple[str, str | None]:
    """The form's title and display mode, from the cell's first line."""
    match = TITLE_LINE.match(source.split("\n", 1)[0])
    assert match, f"the cell's first line is no Colab title: {source.split(chr(10), 1)[0]!r}"
    return match["title"], match["mode"]
