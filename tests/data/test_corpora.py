"""Corpora and the cache-first, checksum-verified fetch. No test touches the network."""

import hashlib
import io
from pathlib import Path
from urllib.error import URLError

import pytest

from tinytransformer.data import (
    DATASETS, REGISTRY, ChecksumError, DownloadError, RemoteFile, data_dir, fetch, load_corpus, pydoc_corpus,
)
from tinytransformer.data import download

SHAKESPEARE = "tinyshakespeare/input.txt"


@pytest.fixture
def offline(monkeypatch):
    """Any download attempt fails as it would without a network; returns the list of URLs tried."""
    tried = []

    def no_network(url, timeout=None):
        tried.append(url)
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(download, "urlopen", no_network)
    return tried


@pytest.fixture
def empty_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYTRANSFORMER_DATA", str(tmp_path))
    return tmp_path


def test_pydoc_corpus_is_big_and_deterministic():
    text = load_corpus()
    assert 350_000 < len(text) < 800_000  # about 465k characters on Python 3.11
    assert text == pydoc_corpus() == load_corpus("pydoc")
    assert 'The "assert" statement' in text
    assert text.index("assert") < text.index("while")  # topics in sorted order


def test_load_corpus_from_a_file(tmp_path):
    path = tmp_path / "poem.txt"
    path.write_text("Ünïcödé 🙂\nline two\n", encoding="utf-8")
    assert load_corpus(path) == "Ünïcödé 🙂\nline two\n"
    assert load_corpus(str(path)) == "Ünïcödé 🙂\nline two\n"


def test_load_corpus_missing_or_not_utf8(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"'nope.txt' is neither a corpus name \('pydoc', 'shakespeare', 'movie_reviews'\)"):
        load_corpus("nope.txt")
    with pytest.raises(FileNotFoundError, match="is a directory"):
        load_corpus(tmp_path)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.txt is not UTF-8 text: byte 0xe9 at offset 3"):
        load_corpus(latin1)


def test_data_dir_default_and_variable(monkeypatch, tmp_path):
    monkeypatch.delenv("TINYTRANSFORMER_DATA", raising=False)
    assert data_dir() == Path.home() / ".cache" / "tinytransformer"
    monkeypatch.setenv("TINYTRANSFORMER_DATA", str(tmp_path))
    assert data_dir() == tmp_path


def test_registry_covers_the_four_data_sets():
    assert set(DATASETS) == {"tinyshakespeare", "sst2", "wnut17", "movie_reviews"}
    assert len(DATASETS["sst2"]) == 3 and len(DATASETS["wnut17"]) == 3
    for relpath, entry in REGISTRY.items():
        assert entry.relpath == relpath and entry.url.startswith("https://") and entry.url.endswith(relpath.split("/")[1])
        assert len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0


def test_wrong_checksum_in_data_dir_names_file_and_hashes(empty_data_dir, offline):
    fake = empty_data_dir / SHAKESPEARE
    fake.parent.mkdir()
    fake.write_text("To be or not to be\n")
    with pytest.raises(ChecksumError) as info:
        load_corpus("shakespeare")
    message = str(info.value)
    assert str(fake) in message
    assert REGISTRY[SHAKESPEARE].sha256 in message
    assert hashlib.sha256(b"To be or not to be\n").hexdigest() in message
    assert "delete it" in message
    assert offline == []  # a file that is present is never re-downloaded behind the user's back


def test_no_network_says_what_to_do(empty_data_dir, offline):
    with pytest.raises(DownloadError) as info:
        fetch(SHAKESPEARE)
    message = str(info.value)
    assert offline == [REGISTRY[SHAKESPEARE].url]
    for needle in ("No network?", REGISTRY[SHAKESPEARE].url, "TINYTRANSFORMER_DATA", str(empty_data_dir / SHAKESPEARE)):
        assert needle in message
    assert list((empty_data_dir / "tinyshakespeare").iterdir()) == []  # no partial file left


def test_download_is_verified_then_cached(empty_data_dir, monkeypatch):
    good = b"hello, data\n"
    entry = RemoteFile("toy/hello.txt", "https://example.invalid/hello.txt", hashlib.sha256(good).hexdigest())
    monkeypatch.setitem(REGISTRY, entry.relpath, entry)
    served = []
    monkeypatch.setattr(download, "urlopen", lambda url, timeout=None: served.append(url) or io.BytesIO(good))
    path = fetch("toy/hello.txt")
    assert path == empty_data_dir / "toy" / "hello.txt" and path.read_bytes() == good
    assert fetch("toy/hello.txt") == path and served == [entry.url]  # the second call reads the cache
    assert [p.name for p in path.parent.iterdir()] == ["hello.txt"]


def test_download_with_wrong_checksum_saves_nothing(empty_data_dir, monkeypatch):
    entry = RemoteFile("toy/hello.txt", "https://example.invalid/hello.txt", "0" * 64)
    monkeypatch.setitem(REGISTRY, entry.relpath, entry)
    monkeypatch.setattr(download, "urlopen", lambda url, timeout=None: io.BytesIO(b"tampered"))
    with pytest.raises(ChecksumError, match=r"(?s)download of toy/hello.txt .* has the wrong SHA-256.*Nothing was saved"):
        fetch("toy/hello.txt")
    assert list((empty_data_dir / "toy").iterdir()) == []


def test_fetch_unknown_name():
    with pytest.raises(ValueError, match=r"unknown data file 'imdb'; known data sets: \['movie_reviews', 'sst2', 'tinyshakespeare', 'wnut17'\]"):
        fetch("imdb")


def _require(relpath):
    if not (data_dir() / relpath).exists():
        pytest.skip(f"{relpath} is not in the data directory {data_dir()} (set TINYTRANSFORMER_DATA); "
                    "tests never download")


def test_tiny_shakespeare_through_the_loader(offline):
    _require(SHAKESPEARE)
    text = load_corpus("shakespeare")
    assert len(text) == 1_115_394 and len(set(text)) == 65
    assert text.startswith("First Citizen:")
    assert offline == []


@pytest.mark.parametrize("name", ["sst2", "wnut17"])
def test_registered_checksums_match_the_data_dir(offline, name):
    for relpath in DATASETS[name]:
        _require(relpath)
    folder = fetch(name)
    assert folder == data_dir() / name and offline == []
