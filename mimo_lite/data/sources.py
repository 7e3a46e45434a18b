"""Real text found on every machine that runs the kit: the Python standard library.

- code: the `.py` files of the interpreter's standard library (tests included), read as bytes,
  so files that are not UTF-8 reach the admission gate as they are;
- general prose: the docstrings of those files, gathered per module like a help page, and the
  language-reference sections that ship in `pydoc_data` (the text behind `help("if")`).

Which files and sections are read does not depend on the interpreter: the kit samples from the
fixed lists in `stdlib.json`, the files and pydoc topics that Python 3.10, 3.11, 3.12 and 3.13 all
have. Their text does differ a little between releases (a docstring reworded, a test added), so
a corpus built on 3.12 is not byte for byte the one built on 3.11. The build records the
interpreter's version in its report, not in its fingerprint: a corpus built elsewhere is reused
as it is, not rebuilt for a patch release (see `mimo-lite unpack`).
"""

from __future__ import annotations

import ast
import json
import random
import sysconfig
import warnings
from pathlib import Path

from .documents import document

LISTS = json.loads((Path(__file__).resolve().parent / "stdlib.json").read_text())
TEST_FOLDERS = {"test", "tests", "idle_test"}


def stdlib_files(n: int, rng: random.Random, tests: bool = True) -> list[Path]:
    """`n` standard-library modules, sampled reproducibly from the fixed list of `stdlib.json`.

    A listed file that this interpreter lacks (a distribution may leave out the test suite)
    is skipped: the sample is the same everywhere, only what can be read of it differs.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    names = [name for name in LISTS["files"] if tests or not TEST_FOLDERS & set(name.split("/"))]
    chosen = sorted(rng.sample(names, min(n, len(names))))
    return [root / name for name in chosen if (root / name).is_file()]


def code_documents(files: list[Path]) -> list[dict]:
    """One document per module: its source bytes (decoded later, by `admit`)."""
    return [document(path.read_bytes(), "stdlib_code", "code") for path in files]


def docstring_documents(files: list[Path], min_chars: int = 120) -> tuple[list[dict], int]:
    """Per module, its module/class/function docstrings of at least `min_chars` as one page.

    Returns the documents and the number of modules that did not parse (some test files are
    broken on purpose, or written in an encoding this interpreter rejects).
    """
    docs, unparsable = [], 0
    for path in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")            # invalid escapes in old test files
                tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError, UnicodeDecodeError):
            unparsable += 1
            continue
        sections = []
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                text = ast.get_docstring(node)
                if text and len(text) >= min_chars:
                    title = path.stem if isinstance(node, ast.Module) else node.name
                    sections.append(f"{title}\n{text}")
        if sections:
            docs.append(document(f"Help on {path.stem}:\n\n" + "\n\n".join(sections),
                                 "stdlib_docstrings", "general"))
    return docs, unparsable


def pydoc_documents(n: int) -> list[dict]:
    """The first `n` sections (by name, from the fixed list) of the language reference bundled
    with Python."""
    from pydoc_data.topics import topics
    return [document(topics[name], "pydoc_topics", "general")
            for name in LISTS["pydoc_topics"][:n] if name in topics]
