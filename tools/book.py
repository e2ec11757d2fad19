"""Build the course as a static web site: every lesson turned into a notebook, executed, and rendered.

    python tools/book.py                          # every lesson, full length, into build/book/
    TINYTRANSFORMER_SHORT=1 python tools/book.py  # the short mode CI runs (a few minutes)
    python tools/book.py --lessons 01 05 --out /tmp/book   # some lessons only

For each ``lessons/NN_slug.py`` (jupytext's ``# %%`` percent format): jupytext makes it a notebook; nbclient
executes it in a fresh IPython kernel, one lesson after another, with one BLAS thread, matplotlib's Agg
backend, the lesson's own ``__file__`` and ``lessons/`` importable (``from course import ...``), a scratch
folder as its working directory, and ``TINYTRANSFORMER_FIGURES`` pointing at ``OUT/figures``. A figure a cell
saves is shown right after that cell (an ``<img>`` of the PNG beside the pages). ``book_html`` renders the
page (math as MathML: no network needed to read the book) with previous / next links, then the index.

Written to OUT: ``index.html``, ``NN_slug.html`` per lesson, ``figures/*.png``, and ``times.json``: each
lesson's wall-clock and CPU seconds (the kernel's, user + system, its start not counted), the input of
``python tools/course_index.py --record`` (``make index``). A lesson whose cell fails still gets its page
(with the traceback, to read); the build goes on and exits with status 1, naming it.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import jupytext
import nbformat
import psutil
from book_html import BOOK_CSS, BookExporter, index_page, nav
from course_index import LESSONS, load_outline, load_times, today
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbconvert.preprocessors import ExtractOutputPreprocessor

sys.path.insert(0, str(LESSONS))
from course import SHORT  # noqa: E402  (the lessons' own definition of the short mode)

THREADS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _pngs(folder: Path) -> dict[str, tuple[int, int]]:
    """Each PNG in ``folder`` with its (modification time, size), to tell which ones a cell wrote."""
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.glob("*.png")}


def _cpu_seconds(pid: int) -> float:
    """User + system seconds of process ``pid`` and of the children it has waited for."""
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def execute(lesson, figures: Path, timeout: int | None) -> tuple[nbformat.NotebookNode, dict]:
    """Run one lesson as a notebook; return it with its outputs (and figures), and its measurement."""
    nb = jupytext.read(lesson.path)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["title"] = f"{lesson.number} · {lesson.title}"
    # Set up what running the file as a script gives, in a cell dropped again before rendering.
    setup = nbformat.v4.new_code_cell(f"__file__ = {str(lesson.path)!r}")
    nb.cells.insert(0, setup)
    env = dict(os.environ, **THREADS, MPLBACKEND="Agg", TINYTRANSFORMER_FIGURES=str(figures),
               PYTHONPATH=os.pathsep.join(filter(None, [str(LESSONS), os.environ.get("PYTHONPATH")])))
    env["NUMBA_NUM_THREADS"] = os.environ.get("NUMBA_NUM_THREADS", "1")  # the caller may choose Numba's threads
    seen = _pngs(figures)
    clock = {}

    def on_cell_executed(cell, cell_index, execute_reply):
        nonlocal seen
        now = _pngs(figures)
        for name in sorted(n for n in now if seen.get(n) != now[n]):
            cell.outputs.append(nbformat.v4.new_output(
                "display_data", data={"text/html": f'<img class="book-figure" src="figures/{name}" alt="{name}">'}
            ))
        seen = now
        if cell_index == 0:
            clock["start"] = (time.perf_counter(), _cpu_seconds(client.km.provisioner.pid))
        clock["end"] = (time.perf_counter(), _cpu_seconds(client.km.provisioner.pid))

    with tempfile.TemporaryDirectory(prefix=f"book_{lesson.stem}_") as scratch:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=True,
                                on_cell_executed=on_cell_executed)
        ok = True
        with open(Path(scratch) / "kernel.log", "w+", encoding="utf-8") as log:
            try:
                client.execute(cwd=scratch, env=env, stderr=log)
            except (CellExecutionError, CellTimeoutError, DeadKernelError):  # the page shows how far it got
                ok = False
            log.seek(0)  # the kernel's own messages (a cell's stderr is in the page), but for a warning about
            # its local TCP sockets that every kernel prints
            sys.stderr.writelines(line for line in log if "without encryption" not in line)
    nb.cells.pop(0)
    for cell in nb.cells:  # number the cells as the lesson's own, without the setup cell
        if cell.cell_type == "code" and cell.get("execution_count"):
            cell.execution_count -= 1
    (t0, c0), (t1, c1) = clock.get("start", (0, 0)), clock.get("end", (0, 0))
    return nb, {"ok": ok, "wall_s": t1 - t0, "cpu_s": c1 - c0}


def render(nb, lesson, out: Path, prev, nxt) -> list[str]:
    """Write ``OUT/NN_slug.html`` (and any image the notebook itself displayed); return the math problems."""
    exporter = BookExporter()
    exporter.register_preprocessor(ExtractOutputPreprocessor(output_filename_template=f"{lesson.stem}"
                                                             "_{cell_index}_{index}{extension}"), enabled=True)
    resources = {"metadata": {"name": nb.metadata["title"]}, "output_files_dir": "figures",
                 "book_nav": nav(prev, nxt), "book_css": BOOK_CSS}
    body, resources = exporter.from_notebook_node(nb, resources=resources)
    for name, data in resources.get("outputs", {}).items():
        (out / name).write_bytes(data)
    (out / f"{lesson.stem}.html").write_text(body, encoding="utf-8")
    return exporter.problems


def select(lessons, wanted: list[str] | None):
    """The lessons named by number or stem in ``wanted`` (all when None)."""
    if not wanted:
        return lessons
    chosen = [lesson for lesson in lessons if lesson.number in wanted or lesson.stem in wanted]
    missing = set(wanted) - {x for lesson in chosen for x in (lesson.number, lesson.stem)}
    if missing:
        raise SystemExit(f"book: no lesson {sorted(missing)} in lessons/")
    return chosen


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=LESSONS.parent / "build" / "book")
    parser.add_argument("--lessons", nargs="*", help="numbers (05) or names (05_attention); default: all")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds a cell may take")
    args = parser.parse_args(argv)
    parts, lessons = load_outline(strict=False)  # a lesson new to the outline still gets its page
    lessons = select(lessons, args.lessons)
    out = args.out.resolve()  # the kernels run elsewhere: every path they are given is absolute
    if out.exists():
        shutil.rmtree(out)
    (out / "figures").mkdir(parents=True)
    mode = "short" if SHORT else "full"
    recorded = load_times(LESSONS / "times.json")["lessons"]
    measured, pages, failed = {}, [], []
    for i, lesson in enumerate(lessons):
        load = os.getloadavg()[0]
        print(f"book: {lesson.stem} ({mode}) ...", end=" ", flush=True)
        nb, m = execute(lesson, out / "figures", args.timeout)
        prev = (f"{lessons[i - 1].stem}.html", f"{lessons[i - 1].number} · {lessons[i - 1].title}") if i else None
        nxt = (f"{lessons[i + 1].stem}.html", f"{lessons[i + 1].number} · {lessons[i + 1].title}") \
            if i + 1 < len(lessons) else None
        problems = render(nb, lesson, out, prev, nxt)
        measured[lesson.slug] = dict(m, load=load)
        print(f"{'ok' if m['ok'] else 'FAILED'}, {m['wall_s']:.1f} s wall, {m['cpu_s']:.1f} s CPU", flush=True)
        for problem in problems:
            print(f"book: warning: {lesson.stem}: {problem}", file=sys.stderr)
        if not m["ok"]:
            failed.append(lesson.stem)
        pages.append({"number": lesson.number, "title": lesson.title, "href": f"{lesson.stem}.html",
                      "part": lesson.part, "teaches": lesson.teaches, "after": lesson.after, "ok": m["ok"],
                      "wall_s": m["wall_s"], "cpu_s": m["cpu_s"], "full": recorded.get(lesson.slug, {}).get("full")})
    date = today()
    (out / "index.html").write_text(index_page(parts, pages, mode, date), encoding="utf-8")
    command = "TINYTRANSFORMER_SHORT=1 make book" if SHORT else "make book"
    numba = os.environ.get("NUMBA_NUM_THREADS", "1")
    threads = f"one BLAS thread and {'one' if numba == '1' else numba} Numba thread{'s' if numba != '1' else ''} " \
        f"(`OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 NUMBA_NUM_THREADS={numba}`)"
    (out / "times.json").write_text(json.dumps(
        {"mode": mode, "date": date, "cores": os.cpu_count(), "nice": os.nice(0), "command": command,
         "threads": threads, "lessons": measured}, indent=2) + "\n", encoding="utf-8")
    print(f"book: {out / 'index.html'} ({len(pages)} lessons, {sum(p['wall_s'] for p in pages):.0f} s)")
    if failed:
        print(f"book: these lessons failed (their pages show where): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
