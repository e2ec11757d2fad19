"""The movie-review corpus (``load_corpus("movie_reviews")``) and ``to_ptb``, the normaliser into SST-2's style.

The rules and the loader's mechanics run on small texts and a toy zip; the counts
run on the real zip when it is in the data directory and skip otherwise: tests
never download (``fetch`` would).
"""

import hashlib
import zipfile
from urllib.error import URLError

import pytest

from tinytransformer.data import REGISTRY, ChecksumError, RemoteFile, data_dir, load_corpus, load_sst2
from tinytransformer.data import download
from tinytransformer.data.corpora import MOVIE_REVIEWS, movie_reviews_corpus
from tinytransformer.data.ptb import to_ptb

SST2_FILES = [f"sst2/stsa.binary.{split}" for split in ("train", "dev", "test")]


@pytest.fixture
def offline(monkeypatch):
    """Any download attempt fails as it would without a network; returns the list of URLs tried."""
    tried = []

    def no_network(url, timeout=None):
        tried.append(url)
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(download, "urlopen", no_network)
    return tried


@pytest.mark.parametrize("raw, ptb", [
    # 1. Windows-1252 punctuation that lost its high bit
    ("it\x12s \x13good\x14 \x16 really\x05", "it 's `` good '' -- really ..."),
    # 2. mark-up
    ("&nbsp ; the end . novikov&#137 ;", "the end . novikov"),
    ("_really_ good , _the matrix_", "really good , the matrix"),
    # 3. brackets, 4. escapes (once: SST-2's own \/ stays)
    ("( lost highway ) [r] {x}", "-lrb- lost highway -rrb- -lsb- r -rsb- -lcb- x -rcb-"),
    ("writer/director * * * writer\\/director", "writer\\/director \\* \\* \\* writer\\/director"),
    # 5. dashes and signs
    ("the lap--a scene cost $60 , 90% of #1", "the lap -- a scene cost $ 60 , 90 % of # 1"),
    # 6. single quotes
    ("`the matrix' and 'scream' and the kids' parents", "` the matrix ' and ` scream ' and the kids ' parents"),
    ("the '70s , 'em , rock 'n' roll , 'til , ol' , rockin' , o'hara , 'cause", None),
    ("``high fidelity''", "`` high fidelity ''"),
    # 7. clitics
    ("it's don't can't won't ain't cannot", "it 's do n't ca n't wo n't ai n't can not"),
    ("they're i've we'll i'd i'm let's film's '90's", "they 're i 've we 'll i 'd i 'm let 's film 's '90 's"),
    # 8. periods
    ("the u . s . army and e . t . , alan j . pakula", "the u.s. army and e.t. , alan j. pakula"),
    ("mr . smith met robert downey jr .", "mr. smith met robert downey jr ."),
    ("wait . . . what . . . . it cost $2 . 50 . .", "wait ... what ... it cost $ 2.50 . ."),
    # 9. double quotes
    ('he said " no " and " yes " .', "he said `` no '' and `` yes '' ."),
    # SST-2's own style is left alone
    ("it 's -lrb- not -rrb- a `` cult '' film ... i do n't like mr. lopez", None),
])
def test_to_ptb_rules(raw, ptb):
    assert to_ptb(raw) == (raw if ptb is None else ptb)


def test_double_quotes_alternate_across_lines_and_resynchronise_at_line_edges():
    review = 'he said " it\'s over .\nwe\'re done . "\nthen " a \n" b " c "'
    assert to_ptb(review).split("\n") == [
        "he said `` it 's over .",
        "we 're done . ''",
        "then `` a",       # a quote left open ...
        "`` b '' c ''",    # ... a quote that starts a line opens, one that ends a line closes
    ]


def test_lines_stay_lines():
    assert to_ptb("a\n\nb\n") == "a\n\nb\n"
    assert to_ptb("one\n&nbsp ;\ntwo") == "one\n\ntwo"


def toy_zip(path):
    """A zip laid out as NLTK's: a folder per polarity, a README; written out of name order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("movie_reviews/README", "a readme , not a review\n")
        archive.writestr("movie_reviews/pos/cv000_1.txt", 'a " great " film . \nit\'s fun . \n')
        archive.writestr("movie_reviews/neg/cv001_2.txt", "second negative . \n")
        archive.writestr("movie_reviews/neg/cv000_3.txt", "i can't stand it ( at all ) . \n&nbsp ; \nbad . \n")
    return path


def test_loader_reads_the_verified_zip_in_name_order(tmp_path, monkeypatch, offline):
    monkeypatch.setenv("TINYTRANSFORMER_DATA", str(tmp_path))
    path = toy_zip(tmp_path / MOVIE_REVIEWS)
    entry = REGISTRY[MOVIE_REVIEWS]
    monkeypatch.setitem(REGISTRY, MOVIE_REVIEWS, RemoteFile(entry.relpath, entry.url, download.sha256_of(path)))
    assert load_corpus("movie_reviews") == ("i ca n't stand it -lrb- at all -rrb- .\nbad .\n\n"
                                            "second negative .\n\n"
                                            "a `` great '' film .\nit 's fun .\n")
    assert movie_reviews_corpus(ptb_style=False) == ("i can't stand it ( at all ) . \n&nbsp ; \nbad . \n\n"
                                                     "second negative . \n\n"
                                                     'a " great " film . \nit\'s fun . \n')
    assert [p.name for p in (tmp_path / "movie_reviews").iterdir()] == ["movie_reviews.zip"]  # nothing unpacked
    assert offline == []


def test_tampered_zip_raises_checksum_error(tmp_path, monkeypatch, offline):
    monkeypatch.setenv("TINYTRANSFORMER_DATA", str(tmp_path))
    path = toy_zip(tmp_path / MOVIE_REVIEWS)
    with pytest.raises(ChecksumError) as info:
        load_corpus("movie_reviews")
    message = str(info.value)
    assert str(path) in message and REGISTRY[MOVIE_REVIEWS].sha256 in message
    assert hashlib.sha256(path.read_bytes()).hexdigest() in message
    assert offline == []  # a file that is present is never replaced behind the user's back


def _require(*relpaths):
    for relpath in relpaths:
        if not (data_dir() / relpath).exists():
            pytest.skip(f"{relpath} is not in the data directory {data_dir()} (set TINYTRANSFORMER_DATA); "
                        "tests never download")


@pytest.fixture(scope="module")
def reviews():
    """The real corpus, normalised and as stored, loaded once."""
    _require(MOVIE_REVIEWS)
    return load_corpus("movie_reviews"), movie_reviews_corpus(ptb_style=False)


def test_real_corpus_counts(reviews, offline):
    text, raw = reviews
    assert text.endswith(".\n")
    assert len(text.split("\n\n")) == len(raw.split("\n\n")) == 2000
    for corpus, words, sentences, lines, characters, nt in ((raw, 1_492_681, 64_720, 66_719, 7_788_003, 0),
                                                            (text, 1_518_940, 64_718, 66_717, 7_860_165, 6_231)):
        assert len(corpus.split()) == words
        assert sum(1 for line in corpus.splitlines() if line) == sentences
        assert corpus.count("\n") == lines and len(corpus) == characters
        assert corpus.split().count("n't") == nt
    assert "\n\n\n" not in text and text.split("\n", 1)[0].startswith("plot : two teen couples go to a church party")
    with zipfile.ZipFile(data_dir() / MOVIE_REVIEWS) as archive:
        readme = archive.read("movie_reviews/README").decode().split("\n")[0]
    assert readme.strip() and readme not in raw  # the README is not review text
    assert offline == []


def test_real_corpus_covers_sst2_and_shares_only_short_phrases_with_its_test_set(reviews):
    _require(*SST2_FILES)
    text, raw = reviews
    train = [w for sentence in load_sst2("train")[0] for w in sentence.split()]

    def covered(corpus):  # the share of SST-2's training words (running, not distinct) in the corpus's vocabulary
        vocabulary = set(corpus.split())
        return sum(w in vocabulary for w in train) / len(train)

    assert (round(covered(raw), 4), round(covered(text), 4)) == (0.9555, 0.9728)
    lines = set(text.split("\n"))
    test = load_sst2("test")[0]
    assert [s for s in test if s in lines] == ["do n't waste your money ."]
    found = [s for s in test if s in text]  # common phrases, no shared review: the longest has six words
    assert len(found) == 11 and max(len(s.split()) for s in found) == 6 and "ridiculous ." in found


def test_sst2_is_already_in_ptb_style():
    _require(*SST2_FILES)
    sentences = [s for split in ("train", "dev", "test") for s in load_sst2(split)[0]]
    changed = [s for s in sentences if to_ptb(s) != s]
    assert len(sentences) == 9613 and len(changed) == 4  # 3 non-breaking spaces made plain, one ". . ." -> "..."
    assert all(to_ptb(s) == " ".join(s.split()).replace(". . .", "...") for s in changed)
