"""Checks of exercises/07_bpe.py: byte-pair encoding's counting, merging, training and encoding.

Held to ``data.bpe``: ``merge_pair``, and ``BPETokenizer`` trained and encoding with a pattern that keeps
the whole text as one chunk (the exercises merge across words; the library's default pattern would not).
"""

from ..data.bpe import BPETokenizer, merge_pair
from .checking import Check, ExerciseFailure

WHOLE_TEXT = r"(?s).+"  # one chunk: the text itself


def _ids(got, what, case):
    """``got`` as a list of ints, or a failure saying what it is."""
    try:
        ids = [int(i) for i in got]
    except (TypeError, ValueError):
        raise ExerciseFailure(f"{what} is a {type(got).__name__}, expected a list of ints, {case}") from None
    return ids


def _expect_same_list(what, got, want, case):
    if got == want:
        return
    first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    got_item, want_item = (items[first] if first < len(items) else "nothing (the list ends)" for items in (got, want))
    raise ExerciseFailure(f"{what} differ first at item {first}: got {got_item}, expected {want_item} "
                          f"(lengths {len(got)} and {len(want)}; the library's), {case}")


# texts whose bytes are the ids: a clear winner, a tie (the smaller pair wins), repeats that overlap, too short
PAIR_TEXTS = ["aaabdaaabac", "cdab", "aaaa", "hello hello", "héhé", "ab", "a", ""]


def check_most_frequent_pair(learner):
    for text in PAIR_TEXTS:
        ids = list(text.encode("utf-8"))
        case = f"for the ids {ids} (the bytes of {text!r})"
        merges = BPETokenizer.train(text, 257, pattern=WHOLE_TEXT).merges
        want = merges[0] if merges else None
        got = learner(list(ids))
        if got is None or want is None:
            if got is not want:
                raise ExerciseFailure(f"got {got}, expected {want} (None: fewer than two ids), {case}")
            continue
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise ExerciseFailure(f"got {got!r}, expected a pair (a, b), {case}")
        if tuple(int(i) for i in got) != want:
            raise ExerciseFailure(f"got {tuple(got)}, expected {want} (the most frequent; a tie goes to the smaller "
                                  f"pair), {case}")


# (ids, pair, new_id): one and two occurrences, overlapping repeats, at the ends, none, too short
MERGE_CASES = [
    ([1, 2, 3, 1, 2], (1, 2), 99),
    ([5, 5, 5], (5, 5), 7),
    ([5, 5, 5, 5], (5, 5), 7),
    ([2, 1, 2, 1], (1, 2), 9),
    ([1, 2], (1, 2), 3),
    ([3, 4, 5], (1, 2), 6),
    ([1], (1, 2), 3),
    ([], (1, 2), 3),
]


def check_merge_pair(learner):
    for ids, pair, new_id in MERGE_CASES:
        case = f"for ids {ids}, pair {pair}, new_id {new_id}"
        got = _ids(learner(list(ids), pair, new_id), "the merged ids", case)
        _expect_same_list("the merged ids", got, merge_pair(ids, pair, new_id), case)


# (text, number of merges): Wikipedia's example, text that runs out of pairs, a sentence, non-ASCII text
TRAIN_CASES = [("aaabdaaabac", 3), ("aaaa", 10), ("the cat sat on the mat; the hat sat on the cat", 12),
               ("naïve café, naïve café", 6)]


def check_train_bpe(learner):
    for text, n in TRAIN_CASES:
        case = f"for {text!r} and {n} merges"
        got = learner(text, n)
        try:
            got = [tuple(int(i) for i in pair) for pair in got]
        except (TypeError, ValueError):
            raise ExerciseFailure(f"returned {type(got).__name__} {got!r:.60}, expected a list of pairs, {case}") \
                from None
        _expect_same_list("the merges", got, BPETokenizer.train(text, 256 + n, pattern=WHOLE_TEXT).merges, case)


TRAINING_TEXT = "the cat sat on the mat; the hat sat on the cat. that is that."
ENCODE_TEXTS = ["the cat", "that hat sat", "the the the", "x", "", "naïve"]


def check_encode(learner):
    tokenizer = BPETokenizer.train(TRAINING_TEXT, 256 + 20, pattern=WHOLE_TEXT)
    merges = list(tokenizer.merges)
    for text in ENCODE_TEXTS:
        case = f"for {text!r}, with 20 merges learned from {TRAINING_TEXT[:24]!r}..."
        got = _ids(learner(text, list(merges)), "the ids", case)
        _expect_same_list("the ids", got, tokenizer.encode(text), case)


CHECKS = [
    Check("most_frequent_pair", check_most_frequent_pair),
    Check("merge_pair", check_merge_pair),
    Check("train_bpe", check_train_bpe),
    Check("encode", check_encode),
]
