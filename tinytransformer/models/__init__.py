"""Complete models assembled from ``tinytransformer.nn``: each file is one architecture."""

from .gpt import GPT, GPTConfig
from .heads import SequenceClassifier, TokenClassifier
from .rnn_lm import RNNLM, RNNLMConfig
from .seq2seq import Seq2SeqConfig, Seq2SeqTransformer
from .seed_article import SeedTransformer

__all__ = ["GPT", "GPTConfig", "SeedTransformer"]
__all__ += ["SequenceClassifier", "TokenClassifier"]
__all__ += ["RNNLM", "RNNLMConfig", "Seq2SeqConfig", "Seq2SeqTransformer"]
