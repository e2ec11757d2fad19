"""The book, tested like pages a person opens: a short build of three quick lessons, then every link, figure,
output and formula on its pages checked (and, where Debian's chromium is installed, one page drawn); and the
course index in lessons/README.md checked to be what tools/course_index.py generates."""

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import course_index  # noqa: E402

QUICK = ["01", "02", "05"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """What a test needs from one page: its links (with rel), images, and the TeX of its math."""

    def __init__(self, path: Path):
        super().__init__(convert_charrefs=True)
        self.links, self.images, self.tex, self.scripts = [], [], [], []
        self._in_tex = False
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and "href" in a:
            self.links.append((a["href"], a.get("rel")))
        elif tag == "img":
            self.images.append(a.get("src", ""))
        elif tag in ("script", "link"):
            self.scripts.append(a.get("src") or a.get("href") or "")
        elif tag == "annotation" or (tag == "code" and a.get("class") == "tex"):
            self._in_tex = True
            self.tex.append("")

    def handle_endtag(self, tag):
        if tag in ("annotation", "code"):
            self._in_tex = False

    def handle_data(self, data):
        if self._in_tex:
            self.tex[-1] += data


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """The short book of lessons 01, 02 and 05, built as `make book` builds it."""
    for name in ("jupytext", "nbclient", "nbconvert", "ipykernel", "latex2mathml"):
        pytest.importorskip(name, reason="the book extra (pip install -e '.[book]')")
    out = tmp_path_factory.mktemp("build") / "book"
    env = dict(os.environ, TINYTRANSFORMER_SHORT="1", MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1")
    result = subprocess.run(  # --out relative, as make gives it
        [sys.executable, str(ROOT / "tools" / "book.py"), "--out", "book", "--lessons", *QUICK],
        cwd=out.parent, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"book build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return out


def lesson_pages(book: Path) -> list[Path]:
    return sorted(book.glob("[0-9][0-9]*_*.html"))


def test_every_lesson_page_is_linked_from_the_index(book):
    pages = lesson_pages(book)
    assert [p.name[:2] for p in pages] == QUICK
    linked = {href for href, _ in Page(book / "index.html").links}
    assert {p.name for p in pages} <= linked, f"not linked from index.html: {sorted({p.name for p in pages} - linked)}"
    for href in linked:
        assert (book / href).is_file(), f"index.html links to {href}, which is not there"


def test_every_figure_is_a_png_beside_the_pages(book):
    for page in lesson_pages(book):
        images = Page(page).images
        assert images, f"{page.name} shows no figure, though its lesson saves one"
        for src in images:
            path = (page.parent / src).resolve()
            assert not src.startswith(("http:", "https:", "data:")), f"{page.name}: <img src={src[:40]}> is not a file"
            assert path.is_file(), f"{page.name}: <img> names {src}, which is missing"
            data = path.read_bytes()
            assert len(data) > len(PNG_SIGNATURE) and data.startswith(PNG_SIGNATURE), f"{src} is not a PNG"


def test_no_output_holds_a_traceback(book):
    for page in lesson_pages(book):
        text = page.read_text(encoding="utf-8")
        assert "Traceback (most recent call last)" not in text, f"{page.name} shows a traceback"
        assert 'data-mime-type="application/vnd.jupyter.error"' not in text, f"{page.name} shows an error"


def _control(tex_list):
    return [t for t in tex_list if re.search(r"[\x00-\x09\x0b-\x1f\x7f]", t)]


def test_math_is_mathml_without_control_characters(book):
    formulas = {page.name: Page(page).tex for page in lesson_pages(book)}
    assert formulas["05_attention.html"], "lesson 05's formulas did not become MathML"
    for name, tex in formulas.items():
        assert not _control(tex), f"{name}: control characters in math (a \\t read as TAB?): {_control(tex)}"


def test_the_math_check_finds_a_tab_where_tanh_was_meant(tmp_path):
    """A TAB where ``\\tanh`` was meant reaches the page's math, where the check above finds it."""
    pytest.importorskip("nbconvert")
    pytest.importorskip("latex2mathml")
    import nbformat
    from book_html import BookExporter

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("a $\tanh$ and a $(L, d) \times (d, S)$")])
    exporter = BookExporter()
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": "tab"}, "book_nav": "", "book_css": ""})
    assert len(exporter.problems) == 2  # the builder warns about each
    page = tmp_path / "tab.html"
    page.write_text(body, encoding="utf-8")
    assert _control(Page(page).tex) == ["\tanh", "(L, d) \times (d, S)"]


def test_previous_and_next_links_resolve_in_course_order(book):
    pages = lesson_pages(book)
    for i, page in enumerate(pages):
        rels = {}
        for href, rel in Page(page).links:
            if rel in ("prev", "next"):
                assert (book / href).is_file(), f"{page.name}: {rel} link to {href}, which is not there"
                rels.setdefault(rel, set()).add(href)
        assert rels.get("prev", set()) == ({pages[i - 1].name} if i else set()), page.name
        assert rels.get("next", set()) == ({pages[i + 1].name} if i + 1 < len(pages) else set()), page.name


def test_pages_need_no_network(book):
    for page in [book / "index.html", *lesson_pages(book)]:
        remote = [s for s in Page(page).scripts if s.startswith(("http:", "https:", "//"))]
        assert not remote, f"{page.name} loads {remote}"
        assert "mathjax" not in page.read_text(encoding="utf-8").lower(), f"{page.name} still asks for MathJax"


def test_times_are_recorded_for_the_index(book):
    build = json.loads((book / "times.json").read_text(encoding="utf-8"))
    assert build["mode"] == "short" and len(build["lessons"]) == len(QUICK)
    assert all(m["ok"] and m["wall_s"] > 0 and m["cpu_s"] > 0 for m in build["lessons"].values())


def test_a_page_looks_like_a_page_in_chromium(book, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is absent (Debian: apt-get install chromium): the headless screenshot is skipped; "
                    "the other page checks ran")
    image = pytest.importorskip("matplotlib.image")
    shot = tmp_path / "page.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600", f"--screenshot={shot}",
                    (lesson_pages(book)[-1]).as_uri()], capture_output=True, timeout=90, check=False)
    assert shot.is_file() and shot.read_bytes().startswith(PNG_SIGNATURE), "chromium wrote no screenshot"
    pixels = image.imread(str(shot))[..., :3].reshape(-1, 3)
    background = (pixels == pixels[0]).all(axis=1).mean()
    assert background < 0.97, f"the page drew almost nothing: {background:.1%} of it is one colour"


# The index in lessons/README.md


def test_the_readme_table_is_the_generated_one():
    _, lessons = course_index.load_outline()
    times = course_index.load_times(ROOT / "lessons" / "times.json")
    readme = (ROOT / "lessons" / "README.md").read_text(encoding="utf-8")
    assert course_index.rewrite(readme, course_index.table(lessons, times)) == readme, (
        "lessons/README.md's table is stale: run `python tools/course_index.py` (or measure again: "
        "`TINYTRANSFORMER_SHORT=1 make book && make index`)"
    )


def _copy_course(tmp_path: Path, extra: str | None = None) -> Path:
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    for name in ("outline.json", "times.json", "README.md"):
        shutil.copy(ROOT / "lessons" / name, lessons / name)
    for path in course_index.lesson_files():
        shutil.copy(path, lessons / path.name)
    if extra:
        (lessons / extra).write_text("# %% [markdown]\n# # 10 · A new lesson\n", encoding="utf-8")
    return lessons


def test_a_new_lesson_without_an_outline_entry_fails_the_index(tmp_path):
    lessons = _copy_course(tmp_path, extra="10_a_new_lesson.py")
    with pytest.raises(course_index.OutlineError, match="10_a_new_lesson.py has no entry"):
        course_index.load_outline(lessons)
    assert course_index.main(["--check", "--lessons-dir", str(lessons)]) == 2


def test_a_new_lesson_with_its_entry_makes_the_table_stale_until_regenerated(tmp_path):
    lessons = _copy_course(tmp_path, extra="10b_a_new_lesson.py")
    outline = json.loads((lessons / "outline.json").read_text(encoding="utf-8"))
    outline["parts"][2]["lessons"].append("a_new_lesson")
    outline["lessons"]["a_new_lesson"] = {"teaches": "something", "after": "do something"}
    (lessons / "outline.json").write_text(json.dumps(outline), encoding="utf-8")
    assert course_index.main(["--check", "--lessons-dir", str(lessons)]) == 1
    assert course_index.main(["--lessons-dir", str(lessons)]) == 0
    assert course_index.main(["--check", "--lessons-dir", str(lessons)]) == 0
    assert "[10b · A new lesson](10b_a_new_lesson.py) | not measured" in (lessons / "README.md").read_text()


def test_recording_a_build_replaces_that_mode_only(tmp_path):
    lessons = _copy_course(tmp_path)
    build = {"mode": "short", "date": "2030-01-01", "cores": 2, "command": "TINYTRANSFORMER_SHORT=1 make book",
             "threads": "one thread", "lessons": {"generation": {"ok": True, "wall_s": 12.34, "cpu_s": 5.0, "load": 1.0},
                                                  "attention": {"ok": False, "wall_s": 1.0, "cpu_s": 1.0, "load": 1.0}}}
    (tmp_path / "build.json").write_text(json.dumps(build), encoding="utf-8")
    before = json.loads((lessons / "times.json").read_text(encoding="utf-8"))
    assert course_index.main(["--record", str(tmp_path / "build.json"), "--lessons-dir", str(lessons)]) == 0
    after = json.loads((lessons / "times.json").read_text(encoding="utf-8"))
    assert after["lessons"]["generation"]["short"] == {"wall_s": 12.3, "cpu_s": 5.0, "run": "2030-01-01 book short"}
    assert after["lessons"]["generation"]["full"] == before["lessons"]["generation"]["full"]
    assert after["lessons"].get("attention", {}).get("short") == before["lessons"].get("attention", {}).get("short")
    assert "12 s" in (lessons / "README.md").read_text(encoding="utf-8")
