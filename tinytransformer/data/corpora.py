"""Text corpora for language modelling, all behind ``load_corpus``.

- ``"pydoc"`` (the default): Python's own help pages, the text ``help("assert")``
  prints, shipped with every Python in ``pydoc_data.topics``. About 465k characters
  of English prose and code examples, so a model trains offline with nothing to
  download. (The exact text differs a little between Python versions.)
- ``"shakespeare"``: Tiny Shakespeare (1,115,394 characters, 65 distinct), the
  classic of char-rnn and nanoGPT, through ``fetch`` (data directory first, then
  the network, verified by SHA-256).
- ``"movie_reviews"``: Pang & Lee's 2,000 movie reviews (``movie_reviews_corpus``),
  in-domain text to pretrain on before SST-2, through ``fetch`` too.
- any path to a UTF-8 text file.
"""

import zipfile
from pathlib import Path

from .download import fetch
from .ptb import to_ptb

CORPORA = ("pydoc", "shakespeare", "movie_reviews")
MOVIE_REVIEWS = "movie_reviews/movie_reviews.zip"


def pydoc_corpus() -> str:
    """Python's help topics joined in sorted order of their names: the same text on every call."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[name].strip("\n") for name in sorted(topics)) + "\n"


def movie_reviews_corpus(ptb_style: bool = True) -> str:
    """Pang & Lee's movie reviews (polarity v2.0): 2,000 IMDb reviews, one sentence per line, as one text.

    Bo Pang and Lillian Lee, "A Sentimental Education: Sentiment Analysis Using
    Subjectivity Summarization Based on Minimum Cuts" (ACL 2004); NLTK's copy,
    CC BY 4.0. Read from the zip that ``fetch`` verified, without unpacking it:
    the reviews in sorted order of their names (``neg/cv000_29416.txt`` ...
    ``neg/cv999_...``, then ``pos/...``; so a split by position, such as
    ``train_val_split``'s last tenth, holds positive reviews only), the
    archive's README left out. Each sentence is a line; one blank line
    separates two reviews, so that ``text.split("\\n\\n")`` gives the 2,000
    reviews back (to hold out whole reviews, or to start a language model's
    window at a review). The folder names are the reviews' polarity labels;
    they are not returned: this is unlabelled pretraining text, and never a
    source of SST-2's labels. SST-2's sentences come from other reviews (Rotten
    Tomatoes snippets): 11 of its 1,821 test sentences occur in the text, all
    common phrases of at most six words ("ridiculous .", "i loved it !"), one
    of them as a whole line ("do n't waste your money ."); 18 of its 6,920
    train sentences are lines of the text.

    With ``ptb_style`` (the default) each review goes through ``to_ptb``, into
    SST-2's Penn-Treebank style (``it 's``, ``do n't``, ``-lrb-``, ``` `` ```),
    so that a vocabulary learned here covers SST-2's tokens:

    ============================  ===========  ============
    measured                      as stored    ``to_ptb``
    ============================  ===========  ============
    words (split on whitespace)   1,492,681    1,518,940
    sentence lines                64,720       64,718
    lines, the blank ones too     66,719       66,717
    characters                    7,788,003    7,860,165
    ``n't``                       0            6,231
    SST-2 train words covered     95.55%       97.28%
    ============================  ===========  ============

    (the last row: the share of SST-2's 133,555 training words, counted with
    repeats, that occur in the reviews). Two lines held only HTML left-overs.
    Loading takes about 1.4 s on a 2-core machine, the SHA-256 check included; ``ptb_style=False``
    returns the lines as stored, a space at the end of each.
    """
    with zipfile.ZipFile(fetch(MOVIE_REVIEWS)) as archive:
        names = sorted(name for name in archive.namelist() if name.endswith(".txt"))
        reviews = [archive.read(name).decode("utf-8") for name in names]
    if ptb_style:
        reviews = [to_ptb(review) for review in reviews]
    return "\n\n".join("\n".join(line for line in review.splitlines() if line.strip())
                       for review in reviews) + "\n"


def load_corpus(name_or_path="pydoc") -> str:
    """The text of a corpus: ``"pydoc"``, ``"shakespeare"``, ``"movie_reviews"`` or a path to a UTF-8 file.

    ``"movie_reviews"`` is in SST-2's Penn-Treebank style (``movie_reviews_corpus``).
    """
    if name_or_path == "pydoc":
        return pydoc_corpus()
    if name_or_path in ("shakespeare", "tinyshakespeare"):
        return fetch("tinyshakespeare/input.txt").read_text(encoding="utf-8")
    if name_or_path == "movie_reviews":
        return movie_reviews_corpus()
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"load_corpus: {str(name_or_path)!r} is neither a corpus name {CORPORA} nor an existing file"
            + (f" ({path.resolve()} is a directory)" if path.is_dir() else f" (no file at {path.resolve()})")
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"load_corpus: {path} is not UTF-8 text: byte {err.object[err.start]:#04x} at offset {err.start} "
            f"({err.reason}); convert it first, e.g. `iconv -f latin1 -t utf-8 {path.name}`"
        ) from None
    if not text.strip():
        raise ValueError(f"load_corpus: {path} holds no text")
    return text
