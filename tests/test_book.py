"""The book of executed notebooks: pages with figures inline, a front page in order, prev/next links,
and one page looked at in a real browser (headless Chromium) when one is installed."""

import base64
import io
import json
import shutil
import subprocess
from pathlib import Path

import matplotlib
import nbformat
import pytest

matplotlib.use("Agg")
import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from mimo_lite.book import build_book  # noqa: E402


def red_png() -> str:
    """A 400 x 300 pixel figure, all red, as base64 PNG (what a notebook's figure output holds)."""
    fig = plt.figure(figsize=(4, 3), dpi=100, facecolor="red")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def executed_notebook(title: str, png: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    figure = nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"})
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\nA first paragraph.\n\n**What you will learn**\n"
                                              f"- how {title} works\n- what it measures\n\n**Needs**: nothing."),
                nbformat.v4.new_code_cell("plt.plot()", execution_count=1, outputs=[figure])]
    return nb


@pytest.fixture
def notebooks(tmp_path):
    """runs/<profile>/notebooks/ after a run of three notebooks, with their run times."""
    folder = tmp_path / "runs" / "toy" / "notebooks"
    folder.mkdir(parents=True)
    png = red_png()
    names = {"00_overview": "00 · Overview", "01_data": "01 · Data", "01b_more_data": "01b · More data",
             "02_tokenizer": "02 · Tokenizer"}          # a split notebook (01b) comes right after its first part
    for name, title in names.items():
        nbformat.write(executed_notebook(title, png), folder / f"{name}.ipynb")
    (folder / "run_times.json").write_text(json.dumps(
        {name: dict(wall_s=12.0, profile="toy", machine="2 CPU cores", finished="2026-01-01 10:00")
         for name in names}))
    return folder, names, png


def test_book_pages_figures_index_and_links(notebooks):
    folder, names, png = notebooks
    index = build_book("toy", runs_root=folder.parent.parent)
    book = folder.parent / "book"
    assert index == book / "index.html"
    pages = {name: (book / f"{name}.html").read_text() for name in names}
    for page in pages.values():
        assert f"data:image/png;base64,{png[:200]}" in page      # the figure inline, no side files
    front = index.read_text()
    positions = [front.index(title) for title in names.values()]
    assert positions == sorted(positions)
    assert "how 01 · Data works" in front and "A first paragraph" not in front  # the objectives
    assert "ran in 12 s at profile toy" in front
    assert 'href="01b_more_data.html">← 01b · More data' in pages["02_tokenizer"]
    assert 'href="01b_more_data.html">01b · More data →' in pages["01_data"]
    assert 'href="02_tokenizer.html">02 · Tokenizer →' in pages["01b_more_data"]
    assert "←" not in pages["00_overview"] and "→" not in pages["02_tokenizer"]
    assert all('href="index.html"' in page for page in pages.values())


def test_book_of_a_folder_into_another(notebooks, tmp_path):
    folder, names, _ = notebooks
    index = build_book(folder, tmp_path / "elsewhere")
    assert index == tmp_path / "elsewhere" / "index.html"
    assert sorted(p.name for p in index.parent.glob("0*.html")) == [f"{n}.html" for n in names]


def test_book_refuses_an_empty_run(tmp_path):
    with pytest.raises(ValueError, match=r"No executed notebooks in .*: run `make run PROFILE=toy`"):
        build_book("toy", runs_root=tmp_path)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(chromium() is None, reason="no Chromium installed (apt-get install chromium); "
                                                "the page is checked in a browser only where one is")
def test_a_rendered_page_shows_its_figure_in_chromium(notebooks, tmp_path):
    folder, _, _ = notebooks
    index = build_book(folder, tmp_path / "book")
    shot = tmp_path / "page.png"
    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
                    "--window-size=1200,1600", f"--screenshot={shot}", (index.parent / "01_data.html").as_uri()],
                   check=True, capture_output=True, timeout=180)
    pixels = matplotlib.image.imread(shot)[..., :3]              # (height, width, rgb) in [0, 1]
    assert pixels.std() > 0                                      # not a blank page
    red = (pixels[..., 0] > 0.8) & (pixels[..., 1] < 0.3) & (pixels[..., 2] < 0.3)
    assert red.sum() > 0.8 * 400 * 300                           # the 400 x 300 red figure, drawn
