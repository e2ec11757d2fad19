"""Exercises for lesson 07, tokenization: byte-pair encoding from scratch, one merge at a time.

Replace each `raise NotImplementedError` with your code, then check it from the project root:

    tinytransformer exercises check 07

The text is turned into its UTF-8 bytes, ids 0..255 (list(text.encode("utf-8"))); merge k makes id 256 + k.
Here merges may cross spaces (the library's tokenizer first splits the text into words; these need not).
The solutions are in exercises/solutions/07_bpe.py: try first.
"""


def most_frequent_pair(ids):
    """The pair of adjacent ids (a, b) that occurs most often in the list ``ids``, as a tuple.

    Count every adjacent pair (ids[i], ids[i+1]), overlapping ones included: [5, 5, 5] holds (5, 5) twice.
    A tie goes to the smaller pair (compare tuples: (97, 98) < (99, 100)). Fewer than two ids: None.
    """
    raise NotImplementedError


def merge_pair(ids, pair, new_id):
    """A new list: ``ids`` with every occurrence of ``pair`` (a, b) replaced by ``new_id``, left to right.

    Occurrences do not overlap: merging (5, 5) in [5, 5, 5] gives [new_id, 5].
    """
    raise NotImplementedError


def train_bpe(text, num_merges):
    """The merges byte-pair encoding learns from ``text``: a list of up to ``num_merges`` pairs (a, b).

    Start from ids = the text's UTF-8 bytes, then repeat: find the most frequent pair (most_frequent_pair),
    record it as merge k (it becomes id 256 + k), and replace it in ids (merge_pair). Stop after
    ``num_merges`` merges, or earlier when fewer than two ids are left.
    """
    raise NotImplementedError


def encode(text, merges):
    """The ids of ``text`` under the learned ``merges`` (a list of pairs; merge k made id 256 + k).

    Start from the text's UTF-8 bytes and replay the merges as training learned them: while some adjacent
    pair of ids is one of the merges, merge the one learned earliest (lowest k) everywhere it occurs.
    """
    raise NotImplementedError
