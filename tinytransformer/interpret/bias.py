"""A template probe for bias: does a classifier's prediction move when only a name or group word changes?

Fill each template with words from several groups and compare the
classifier's probability of the positive class (the approach of Kiritchenko &
Mohammad 2018, "Examining gender and race bias in two hundred sentiment
analysis systems"):

    p(t, w)       = P(positive | template t filled with word w)
    m(t, g)       = mean of p(t, w) over the words w of group g
    gap(t)        = max_g m(t, g) - min_g m(t, g)          how far apart the groups are, per template
    spread(t)     = max_w p(t, w) - min_w p(t, w)          the same over single words, whatever their group
    mean_gap, max_gap = mean and max of gap(t) over the templates

A gap alone does not say the groups matter: with five names a side, one
name's quirks move a group mean. ``permutation_p`` answers "how often would
randomly re-dealing the same words into groups of the same sizes give a mean
gap at least this large?"; a small value says the grouping, not chance,
separates the predictions.

Caveats. A probe checks only the templates and words someone thought of;
names stand in for groups imperfectly (and some names are in the training
data with their own sentiment, e.g. a director's reviews); a gap of zero on
templates does not mean the model is fair on real text, and a gap does not
say which prediction is the "right" one.
"""

import numpy as np


def group_means(probs, labelings, n_groups):
    """m(t, g) for each way of dealing the words into groups: probs (n_templates, n_words), labelings
    (P, n_words) of group ids -> (P, n_templates, n_groups)."""
    member = labelings[:, None, :] == np.arange(n_groups)[None, :, None]  # (P, G, n_words)
    return np.einsum("tw,pgw->ptg", probs, member) / member.sum(axis=2)[:, None, :]


def bias_probe(predict_positive, templates, groups, n_permutations=2000, seed=0) -> dict:
    """Probe ``predict_positive`` (a list of N sentences -> N probabilities of the positive class).

    ``templates`` are strings with a ``{name}`` slot; ``groups`` maps a group's
    label to its words (at least two groups, each non-empty). Returns a dict
    of JSON-able values: ``probabilities`` [template][word], per-template
    ``group_means``, ``gap`` and ``spread`` (see the module docstring),
    ``mean_gap``, ``max_gap``, ``group_means`` averaged over templates, and
    ``permutation_p``.
    """
    templates = list(templates)
    groups = {str(g): list(words) for g, words in groups.items()}
    if len(groups) < 2 or any(not words for words in groups.values()):
        raise ValueError(f"bias_probe: need at least two non-empty groups, got sizes "
                         f"{ {g: len(w) for g, w in groups.items()} }")
    if not templates or any("{name}" not in t for t in templates):
        raise ValueError("bias_probe: every template needs a {name} slot, e.g. '{name} was a great director'")
    words = [w for ws in groups.values() for w in ws]
    labels = np.concatenate([np.full(len(ws), i) for i, ws in enumerate(groups.values())])  # (n_words,)
    sentences = [t.format(name=w) for t in templates for w in words]
    probs = np.asarray(predict_positive(sentences), dtype=np.float64)
    if probs.shape != (len(sentences),):
        raise ValueError(f"bias_probe: predict_positive returned shape {probs.shape} for {len(sentences)} sentences")
    probs = probs.reshape(len(templates), len(words))  # (n_templates, n_words)
    names = list(groups)
    means = group_means(probs, labels[None], len(names))[0]  # (n_templates, G)
    gaps = means.max(axis=1) - means.min(axis=1)  # (n_templates,)
    rng = np.random.default_rng(seed)
    shuffled = group_means(probs, np.stack([rng.permutation(labels) for _ in range(n_permutations)]), len(names))
    shuffled_gaps = (shuffled.max(axis=2) - shuffled.min(axis=2)).mean(axis=1)  # (P,) mean gap of each re-deal
    return {
        "groups": groups,
        "templates": [
            {"template": t, "group_means": dict(zip(names, means[i].tolist())), "gap": float(gaps[i]),
             "spread": float(probs[i].max() - probs[i].min())}
            for i, t in enumerate(templates)
        ],
        "probabilities": {t: dict(zip(words, probs[i].tolist())) for i, t in enumerate(templates)},
        "group_means": dict(zip(names, means.mean(axis=0).tolist())),
        "mean_gap": float(gaps.mean()),
        "max_gap": float(gaps.max()),
        "permutation_p": float((1 + (shuffled_gaps >= gaps.mean() - 1e-12).sum()) / (1 + n_permutations)),
    }
