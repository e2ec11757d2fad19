"""Solutions to lesson 07's exercises (exercises/07_bpe.py): read them after trying.

    tinytransformer exercises check 07 --solutions
"""

from collections import Counter


def most_frequent_pair(ids):
    counts = Counter(zip(ids, ids[1:]))  # every adjacent pair, overlapping ones too
    if not counts:
        return None
    return min(counts, key=lambda pair: (-counts[pair], pair))  # the highest count, then the smallest pair


def merge_pair(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == tuple(pair):
            out.append(new_id)
            i += 2  # skip both halves of the pair
        else:
            out.append(ids[i])
            i += 1
    return out


def train_bpe(text, num_merges):
    ids = list(text.encode("utf-8"))
    merges = []
    while len(merges) < num_merges and len(ids) >= 2:
        pair = most_frequent_pair(ids)
        merges.append(pair)
        ids = merge_pair(ids, pair, 256 + len(merges) - 1)
    return merges


def encode(text, merges):
    ids = list(text.encode("utf-8"))
    rank = {tuple(pair): k for k, pair in enumerate(merges)}
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: rank.get(p, len(rank)))  # the earliest learned pair here
        if pair not in rank:
            break  # no learned pair left
        ids = merge_pair(ids, pair, 256 + rank[pair])
    return ids
