"""The book's HTML: one page per executed lesson (nbconvert's JupyterLab template, with the math turned into
MathML so that no page needs MathJax or any other download), and the index page.

Math: nbconvert's markdown renderer finds ``$...$``, ``$$...$$`` and ``\\begin{env}...\\end{env}`` and would
leave them for MathJax, fetched from a CDN. ``MathMLRenderer`` converts each with ``latex2mathml`` (pure
Python), which browsers draw natively, and keeps the TeX in an ``<annotation>`` (hidden, but what a test or a
screen reader can read). TeX that does not convert stays as TeX, in a ``<code class="tex">``.

Control characters in TeX are a mistake worth finding: a lesson written as a Python string, or edited by a
tool that read ``\\t`` of ``\\tanh`` as a TAB, shows ``$	anh$``. ``control_characters`` finds them;
``tools/book.py`` warns about each and ``tests/test_book.py`` fails on any in a page.
"""

import html
import re

import jinja2
from latex2mathml.converter import convert
from nbconvert.exporters import HTMLExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")  # everything below a space but the newline, and DEL


def control_characters(tex: str) -> list[str]:
    """The control characters in ``tex`` as 'U+0009' names (a newline is allowed: display math spans lines)."""
    return [f"U+{ord(c):04X}" for c in CONTROL.findall(tex)]


def tex_to_mathml(tex: str, display: bool, problems: list | None = None) -> str:
    """``tex`` as a MathML ``<math>`` element with the TeX kept in its annotation; anything that does not
    convert (or holds a control character) is appended to ``problems`` as a message."""
    bad = control_characters(tex)
    if bad and problems is not None:
        problems.append(f"control character {', '.join(bad)} in math ${tex!r}$")
    try:
        mathml = convert(tex, display="block" if display else "inline")
    except Exception as error:  # latex2mathml raises many types; the page shows the TeX instead
        if problems is not None:
            problems.append(f"math ${tex}$ not converted: {error}")
        return f'<code class="tex">{html.escape(tex)}</code>'
    head, rest = mathml.split(">", 1)  # '<math xmlns=... display=...', '<mrow>...</mrow></math>'
    body = rest[: -len("</math>")]
    annotation = f'<annotation encoding="application/x-tex">{html.escape(tex, quote=False)}</annotation>'
    return f"{head}><semantics><mrow>{body}</mrow>{annotation}</semantics></math>"


class MathMLRenderer(IPythonRenderer):
    """nbconvert's markdown renderer, with math written as MathML instead of left for MathJax."""

    def __init__(self, *args, problems: list | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.problems = problems

    def inline_math(self, body: str) -> str:
        return tex_to_mathml(body, display=False, problems=self.problems)

    def block_math(self, body: str) -> str:
        return tex_to_mathml(body, display=True, problems=self.problems)

    def latex_environment(self, name: str, body: str) -> str:
        return tex_to_mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", display=True, problems=self.problems)

    def heading(self, text: str, level: int, **attrs) -> str:
        # nbconvert adds the anchor through ElementTree, which would rename MathML's tags (ns0:math): do it here
        plain = re.sub(r"<[^>]+>", "", re.sub(r"<annotation.*?</annotation>", "", text, flags=re.S))
        anchor = html.escape(re.sub(r"\s+", "-", html.unescape(plain).strip()), quote=True)
        link = "" if self.exclude_anchor_links else f'<a class="anchor-link" href="#{anchor}">{self.anchor_link_text}</a>'
        return f'<h{level} id="{anchor}">{text}{link}</h{level}>\n'


BOOK_CSS = """
nav.book-nav { display: flex; justify-content: space-between; gap: 1em; margin: 1em auto; padding: .6em 1em;
  max-width: 1100px; font-family: system-ui, sans-serif; background: #f3f5f8; border-radius: 6px; }
nav.book-nav a { text-decoration: none; color: #1a4f9c; }
math[display="block"] { margin: .6em 0; font-size: 1.1em; }
code.tex { color: #a33; }
.jp-RenderedHTMLCommon img.book-figure { max-width: 100%; }
"""

PAGE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block extra_css %}<style type="text/css">{{ resources.book_css }}</style>{% endblock extra_css %}
{%- block body_header -%}{{ super() }}{{ resources.book_nav }}{%- endblock body_header -%}
{% block body_footer %}{{ resources.book_nav }}{{ super() }}{% endblock body_footer %}
"""


class BookExporter(HTMLExporter):
    """HTMLExporter with the JupyterLab look, offline: no require.js, MathJax or mermaid from a CDN, math as
    MathML, and the book's navigation at the top and bottom of each page."""

    def __init__(self, **kwargs):
        super().__init__(
            template_name="lab", template_file="book_page.html.j2",
            extra_loaders=[jinja2.DictLoader({"book_page.html.j2": PAGE_TEMPLATE})], **kwargs,
        )
        self.problems: list[str] = []

    @jinja2.pass_context
    def markdown2html(self, context, source):
        cell = context.get("cell", {})
        renderer = MathMLRenderer(
            escape=False, attachments=cell.get("attachments", {}), anchor_link_text=self.anchor_link_text,
            exclude_anchor_links=self.exclude_anchor_links, problems=self.problems,
        )
        return MarkdownWithMath(renderer=renderer).render(source)


def nav(prev: tuple[str, str] | None, nxt: tuple[str, str] | None) -> str:
    """The previous / contents / next bar; each of ``prev`` and ``nxt`` is (href, title) or None."""
    left = f'<a rel="prev" href="{prev[0]}">&larr; {html.escape(prev[1])}</a>' if prev else "<span></span>"
    right = f'<a rel="next" href="{nxt[0]}">{html.escape(nxt[1])} &rarr;</a>' if nxt else "<span></span>"
    return f'<nav class="book-nav">{left}<a href="index.html">contents</a>{right}</nav>'


INDEX_CSS = """
body { font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; color: #222;
  line-height: 1.45; }
h1 { margin-bottom: .2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; width: 100%; } td, th { padding: .35em .5em; vertical-align: top;
  border-bottom: 1px solid #eee; text-align: left; }
td.time { white-space: nowrap; color: #555; font-size: .92em; } .summary { color: #555; }
a { color: #1a4f9c; text-decoration: none; } .failed { color: #b00; } code { background: #f3f3f3; padding: 0 .2em; }
"""


def index_page(parts: list[dict], pages: list[dict], mode: str, date: str) -> str:
    """The contents: each part with its lessons, what each teaches and what you can do after it, the time this
    build took and the full-length time on record. ``pages`` holds one dict per built lesson (number, title,
    href, part, teaches, after, ok, wall_s, cpu_s, full: the recorded full-length entry or None)."""
    from course_index import duration, number_range

    built = "the short mode (<code>TINYTRANSFORMER_SHORT=1</code>, what CI runs)" if mode == "short" else "full length"
    out = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1.0">',
        f"<title>tinytransformer: the course</title><style>{INDEX_CSS}</style></head><body>",
        "<h1>tinytransformer: the course</h1>",
        "<p>From a tensor to a pretrained, fine-tuned GPT, in NumPy. Each page is a lesson from "
        "<code>lessons/</code>, executed: its text, its code, what the code printed and the figures it drew. "
        "Every lesson asserts its own claims, so a page that builds is a page whose claims held.</p>",
        f"<p class=\"summary\">Built on {html.escape(date)} in {built}, one lesson after another, one BLAS "
        "thread. Times: this build's wall-clock and CPU time, and the full-length time on record "
        "(<code>lessons/times.json</code>).</p>",
    ]
    for i, part in enumerate(parts):
        mine = [p for p in pages if p["part"] == i]
        if not mine:
            continue
        numbers = number_range([p["number"] for p in mine])
        out.append(f"<h2>{i + 1}. {html.escape(part['title'])} ({numbers})</h2>")
        out.append(f"<p class=\"summary\">{html.escape(_capital(part['summary']))}.</p><table>")
        for p in mine:
            full = p["full"]
            full_text = f"full length {duration(full['wall_s'])} wall, {duration(full['cpu_s'])} CPU" if full else \
                "full length not measured"
            failed = "" if p["ok"] else " <b class=\"failed\">This lesson failed in this build: its page shows where.</b>"
            out.append(
                f"<tr><td><a href=\"{p['href']}\"><b>{p['number']} · {html.escape(p['title'])}</b></a><br>"
                f"{_inline(_capital(p['teaches']))}.<br><i>After it you can</i> {_inline(p['after'])}.{failed}</td>"
                f"<td class=\"time\">this build: {duration(p['wall_s'])} wall, {duration(p['cpu_s'])} CPU<br>"
                f"{full_text}</td></tr>"
            )
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _inline(text: str) -> str:
    """Plain text with `code` spans, as HTML."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text, quote=False))
