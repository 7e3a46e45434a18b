"""Real text found on every machine that runs the kit: the Python standard library.

- code: the `.py` files of the interpreter's standard library (tests included), read as bytes,
  so files that are not UTF-8 reach the admission gate as they are;
- general prose: the docstrings of those files, gathered per module like a help page, and the
  language-reference sections that ship in `pydoc_data` (the text behind `help("if")`).

What the corpus holds therefore depends on the Python version; the build fingerprint includes it.
"""

from __future__ import annotations

import ast
import random
import sysconfig
import warnings
from pathlib import Path

from .documents import document


def stdlib_files(n: int, rng: random.Random, tests: bool = True) -> list[Path]:
    """`n` standard-library modules, sampled reproducibly from the sorted list of all of them."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py")
                   if "site-packages" not in p.parts and p.name != "topics.py"
                   and (tests or not {"test", "tests", "idle_test"} & set(p.parts)))
    return sorted(rng.sample(files, min(n, len(files))))


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
    """The first `n` sections (by name) of the language reference bundled with Python."""
    from pydoc_data.topics import topics
    return [document(topics[name], "pydoc_topics", "general") for name in sorted(topics)[:n]]
