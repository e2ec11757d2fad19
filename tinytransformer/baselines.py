"""The numbers a fine-tuned Transformer has to beat: two baselines that know nothing about word order.

``BagOfWordsClassifier`` counts each word of a sentence and feeds the counts
to a logistic regression (scikit-learn's ``CountVectorizer`` or
``TfidfVectorizer``, then ``LogisticRegression``):

    p(y = c | x) = softmax(W x + b)_c,    x = the word counts of the sentence

It cannot see that "not good" differs from "good, not", yet on SST-2 it
reaches about 81% test accuracy (trained on the 6,920 training sentences with
the defaults; ``benchmarks/baselines.py`` measures it).

``MostFrequentTagTagger`` gives every token the tag it carried most often in
training, and "O" to a token it never saw. On WNUT-17, whose entities are
rare by design ("emerging"), that is an entity F1 of about 6% (9% with
``lower=True``), while its token accuracy (92.5%) is a little *below* that
of tagging every token "O" (92.6%, with an entity F1 of 0).
"""

from collections import Counter, defaultdict


class BagOfWordsClassifier:
    """Word (or n-gram) counts -> logistic regression; ``fit(texts, labels)``, then ``predict(texts)``.

    ``weighting="tfidf"`` scales counts by inverse document frequency;
    ``token_pattern`` is scikit-learn's (words of two or more characters by
    default); ``C`` is the inverse strength of the L2 penalty.
    """

    def __init__(self, ngram_range=(1, 1), weighting: str = "count", C: float = 1.0, lowercase: bool = True,
                 token_pattern: str = r"(?u)\b\w\w+\b", max_iter: int = 1000):
        if weighting not in ("count", "tfidf"):
            raise ValueError(f"BagOfWordsClassifier: weighting must be 'count' or 'tfidf', got {weighting!r}")
        self.ngram_range = tuple(ngram_range)
        self.weighting = weighting
        self.C = C
        self.lowercase = lowercase
        self.token_pattern = token_pattern
        self.max_iter = max_iter
        self.pipeline = None

    def fit(self, texts, labels) -> "BagOfWordsClassifier":
        from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from threadpoolctl import threadpool_limits  # a dependency of scikit-learn

        texts, labels = list(texts), list(labels)
        if len(texts) != len(labels):
            raise ValueError(f"BagOfWordsClassifier.fit: {len(texts)} texts but {len(labels)} labels")
        if len(set(labels)) < 2:
            raise ValueError(f"BagOfWordsClassifier.fit: need at least two classes, got {sorted(set(labels))}")
        vectorizer = (CountVectorizer if self.weighting == "count" else TfidfVectorizer)(
            ngram_range=self.ngram_range, lowercase=self.lowercase, token_pattern=self.token_pattern)
        self.pipeline = make_pipeline(vectorizer, LogisticRegression(C=self.C, max_iter=self.max_iter))
        # BLAS threads do not help this small, sparse problem, and on a busy machine their spinning
        # made the fit 30-50 times slower (0.3 s -> 15 s on SST-2 with 2 cores under load).
        with threadpool_limits(1):
            self.pipeline.fit(texts, labels)
        return self

    def predict(self, texts) -> list:
        if self.pipeline is None:
            raise RuntimeError("BagOfWordsClassifier.predict: call fit first")
        return self.pipeline.predict(list(texts)).tolist()

    @property
    def classes(self) -> list:
        """The labels, in the order of the logistic regression's rows of ``W``."""
        if self.pipeline is None:
            raise RuntimeError("BagOfWordsClassifier.classes: call fit first")
        return self.pipeline[-1].classes_.tolist()


class MostFrequentTagTagger:
    """Each token gets its most frequent training tag (ties: the tag seen first); unseen tokens get ``default``.

    With ``lower=True``, "Paris" and "paris" count as one token.
    """

    def __init__(self, lower: bool = False, default: str = "O"):
        self.lower = lower
        self.default = default
        self.lexicon = None  # token -> tag

    def _key(self, token: str) -> str:
        return token.lower() if self.lower else token

    def fit(self, sentences, tags) -> "MostFrequentTagTagger":
        sentences, tags = list(sentences), list(tags)
        if len(sentences) != len(tags):
            raise ValueError(f"MostFrequentTagTagger.fit: {len(sentences)} sentences but {len(tags)} tag lists")
        counts = defaultdict(Counter)
        for i, (words, word_tags) in enumerate(zip(sentences, tags)):
            if len(words) != len(word_tags):
                raise ValueError(f"MostFrequentTagTagger.fit: sentence {i} has {len(words)} tokens "
                                 f"but {len(word_tags)} tags")
            for word, tag in zip(words, word_tags):
                counts[self._key(word)][tag] += 1
        self.lexicon = {word: c.most_common(1)[0][0] for word, c in counts.items()}
        return self

    def predict(self, sentences) -> list:
        if self.lexicon is None:
            raise RuntimeError("MostFrequentTagTagger.predict: call fit first")
        return [[self.lexicon.get(self._key(w), self.default) for w in words] for words in sentences]
