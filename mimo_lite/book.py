"""The executed notebooks as a small static book: one HTML page per notebook with its figures inline,
prev/next links, and a front page listing the notebooks in order with their run times.

`mimo-lite book --profile toy` (or `make book`) reads runs/toy/notebooks/ and writes runs/toy/book/;
the folder needs nothing else (scripts from the web, MathJax for formulas, are used when reachable),
so it can be zipped or served as it is.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from .artifacts import runs_dir

COURSE_GUIDE = Path(__file__).resolve().parent.parent / "docs" / "course.md"
STYLE = """body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
  line-height: 1.5; color: #222 }
table { border-collapse: collapse } td, th { border: 1px solid #ccc; padding: 0.2rem 0.5rem }
code { background: #f4f4f4; padding: 0 0.2rem } .notebooks > li { margin-bottom: 1rem } .time { color: #666 }"""
NAV_STYLE = "font: 14px system-ui, sans-serif; padding: 0.6rem 1rem; background: #f4f4f4; border: 1px solid #ddd"


def title_and_summary(nb) -> tuple[str | None, str]:
    """The notebook's first markdown heading, and its "What you will learn" list (markdown), or else
    the paragraph that follows the heading."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            heading = re.search(r"^#+\s+(.+)$", cell.source, re.M)
            if heading:
                learn = re.search(r"\*\*What you will learn\*\*\n((?:[-*] .*(?:\n|$))+)", cell.source)
                first = cell.source[heading.end():].strip().split("\n\n")[0]
                return heading.group(1).strip(), learn.group(1) if learn else first
    return None, ""


def navigation(pages: list[dict], i: int) -> str:
    """A bar of links: contents, the previous notebook, the next one."""
    links = ['<a href="index.html">contents</a>']
    if i > 0:
        links.append(f'<a href="{pages[i - 1]["html"]}">← {html.escape(pages[i - 1]["title"])}</a>')
    if i + 1 < len(pages):
        links.append(f'<a href="{pages[i + 1]["html"]}">{html.escape(pages[i + 1]["title"])} →</a>')
    return f'<nav class="book-nav" style="{NAV_STYLE}">{" · ".join(links)}</nav>'


def standalone(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def build_book(source: str | Path, out_dir: str | Path | None = None,
               runs_root: str | Path | None = None) -> Path:
    """Render every executed notebook of `source` (a profile name, read from runs/<profile>/notebooks/,
    or a folder of executed notebooks) into `out_dir` (default: the folder's sibling `book/`).
    Returns the front page, index.html."""
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    from .notebook import find_notebooks

    folder = Path(source) if Path(source).is_dir() else runs_dir(str(source), runs_root) / "notebooks"
    paths = find_notebooks(folder)                 # course order: 05, 05b, 06, …
    if not paths:
        profile = folder.parent.name if Path(source).is_dir() else source
        raise ValueError(f"No executed notebooks in {folder}: run `make run PROFILE={profile}` "
                         f"(or `mimo-lite notebooks --profile {profile}`) first, then build the book.")
    out = Path(out_dir) if out_dir else folder.parent / "book"
    out.mkdir(parents=True, exist_ok=True)
    times_file = folder / "run_times.json"     # written by `mimo-lite notebooks` (notebook.note_run_time)
    run_times = json.loads(times_file.read_text()) if times_file.exists() else {}

    notebooks = [nbformat.read(path, as_version=4) for path in paths]
    pages = []
    for path, nb in zip(paths, notebooks):
        title, summary = title_and_summary(nb)
        pages.append(dict(name=path.stem, html=f"{path.stem}.html", title=title or path.stem, summary=summary))

    exporter = HTMLExporter(template_name="lab")   # outputs' PNGs stay inline as data: URIs
    for i, (page, nb) in enumerate(zip(pages, notebooks)):
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": page["title"]}})
        nav = navigation(pages, i)
        body = re.sub(r"<body[^>]*>", lambda tag: tag.group(0) + nav, body, count=1)
        head, _, tail = body.rpartition("</body>")
        (out / page["html"]).write_text(head + nav + "</body>" + tail, encoding="utf-8")

    items = []
    for page in pages:
        run = run_times.get(page["name"])
        when = (f'<div class="time">ran in {run["wall_s"]:.0f} s at profile {run["profile"]} on '
                f'{html.escape(run["machine"])}, {run["finished"]}</div>') if run else ""
        items.append(f'<li><a href="{page["html"]}"><b>{html.escape(page["title"])}</b></a>'
                     f'{markdown2html_mistune(page["summary"])}{when}</li>')
    course = ""
    if COURSE_GUIDE.exists():
        guide = markdown2html_mistune(COURSE_GUIDE.read_text(encoding="utf-8"))
        (out / "course.html").write_text(standalone("Course guide", navigation([], 0) + guide), encoding="utf-8")
        course = '<p>Teaching from these notebooks: the <a href="course.html">course guide</a>.</p>'
    total = sum(t["wall_s"] for t in run_times.values())
    front = (f"<h1>mimo-lite: the executed notebooks</h1><p>Read from <code>{html.escape(str(folder))}</code>"
             + (f"; {total / 60:.1f} min of run time in all" if run_times else "") + f".</p>{course}"
             + f'<ul class="notebooks">{"".join(items)}</ul>')
    index = out / "index.html"
    index.write_text(standalone("mimo-lite notebooks", front), encoding="utf-8")
    return index
