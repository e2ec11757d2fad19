"""Text corpora for language modelling, all behind ``load_corpus``.

- ``"pydoc"`` (the default): Python's own help pages, the text ``help("assert")``
  prints, shipped with every Python in ``pydoc_data.topics``. About 465k characters
  of English prose and code examples, so a model trains offline with nothing to
  download. (The exact text differs a little between Python versions.)
- ``"shakespeare"``: Tiny Shakespeare (1,115,394 characters, 65 distinct), the
  classic of char-rnn and nanoGPT, through ``fetch`` (data directory first, then
  the network, verified by SHA-256).
- any path to a UTF-8 text file.
"""

from pathlib import Path

from .download import fetch

CORPORA = ("pydoc", "shakespeare")


def pydoc_corpus() -> str:
    """Python's help topics joined in sorted order of their names: the same text on every call."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[name].strip("\n") for name in sorted(topics)) + "\n"


def load_corpus(name_or_path="pydoc") -> str:
    """The text of a corpus: ``"pydoc"``, ``"shakespeare"``, or a path to a UTF-8 file."""
    if name_or_path == "pydoc":
        return pydoc_corpus()
    if name_or_path in ("shakespeare", "tinyshakespeare"):
        return fetch("tinyshakespeare/input.txt").read_text(encoding="utf-8")
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"load_corpus: {str(name_or_path)!r} is neither a corpus name {CORPORA} nor an existing file"
            + (f" ({path.resolve()} is a directory)" if path.is_dir() else f" (no file at {path.resolve()})")
        )
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"load_corpus: {path} is not UTF-8 text: byte {err.object[err.start]:#04x} at offset {err.start} "
            f"({err.reason}); convert it first, e.g. `iconv -f latin1 -t utf-8 {path.name}`"
        ) from None
