"""Complete models assembled from ``tinytransformer.nn``: each file is one architecture."""

from .bert import Bert, BertConfig, BertForMaskedLM
from .gpt import GPT, GPTConfig
from .heads import SequenceClassifier, TokenClassifier
from .rnn_lm import RNNLM, RNNLMConfig
from .seq2seq import Seq2SeqConfig, Seq2SeqTransformer
from .seed_article import SeedTransformer
from .tagger import BiTagger, BiTaggerConfig

__all__ = ["GPT", "GPTConfig", "SeedTransformer"]
__all__ += ["Bert", "BertConfig", "BertForMaskedLM"]
__all__ += ["BiTagger", "BiTaggerConfig", "SequenceClassifier", "TokenClassifier"]
__all__ += ["RNNLM", "RNNLMConfig", "Seq2SeqConfig", "Seq2SeqTransformer"]
