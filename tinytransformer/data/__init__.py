"""Data: tokenizers, datasets and batches, corpora behind one cache-first, checksum-verified loader.

    from tinytransformer.data import load_corpus, BPETokenizer, random_windows
    text = load_corpus()                         # Python's help pages: offline, nothing to download
    tok = BPETokenizer.train(text, vocab_size=512)
    x, y = random_windows(tok.encode(text), block_size=64, batch_size=8)   # (8, 64) each

Files other than the built-in corpus live in the data directory named by the
environment variable ``TINYTRANSFORMER_DATA`` (default ``~/.cache/tinytransformer``).
"""

from .bpe import SPLIT_PATTERN, BPETokenizer
from .corpora import CORPORA, load_corpus, movie_reviews_corpus, pydoc_corpus
from .datasets import (
    DataLoader, Dataset, TensorDataset, default_collate, random_windows, train_test_split, train_val_split,
)
from .download import DATA_ENV, DATASETS, REGISTRY, ChecksumError, DownloadError, RemoteFile, data_dir, fetch
from .gpt2_tokenizer import GPT2Tokenizer
from .ptb import to_ptb
from .tokenizers import CharTokenizer, Tokenizer, tokenizer_from_dict
from .tasks import (
    SST2_LABELS, WNUT17_TAGS, TaskData, load_classification, load_sst2, load_tagging, load_task, load_wnut17,
    split_train_dev,
)
from .word_tokenizer import WordTokenizer

__all__ = [
    "BPETokenizer", "CORPORA", "CharTokenizer", "ChecksumError", "DATASETS", "DATA_ENV", "DataLoader", "Dataset",
    "DownloadError", "REGISTRY", "RemoteFile", "SPLIT_PATTERN", "TensorDataset", "Tokenizer", "data_dir",
    "default_collate", "fetch", "load_corpus", "movie_reviews_corpus", "pydoc_corpus", "random_windows", "to_ptb",
    "tokenizer_from_dict", "train_test_split", "train_val_split",
]
__all__ += [
    "SST2_LABELS", "TaskData", "WNUT17_TAGS", "WordTokenizer", "load_classification", "load_sst2", "load_tagging",
    "load_task", "load_wnut17", "split_train_dev",
]
__all__ += ["GPT2Tokenizer"]
