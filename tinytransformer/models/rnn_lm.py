"""A character-level recurrent language model: an embedding, a stack of RNN or LSTM layers, a linear head.

    tokens (B, T) -> embedding wte                            (B, T, n_embd)
                  -> n_layer RNN/LSTM layers, state from zero  (B, T, n_hidden)
                  -> lm_head                                   (B, T, V) logits for the next token

The recurrent counterpart of ``GPT`` (Karpathy's char-rnn, 2015), with the
same interface, ``model(idx, targets) -> (logits, loss)``, a config with
``block_size``, ``optimizer_groups`` and ``to_dict``, so the same trainer,
checkpoints and ``generate`` serve both. ``block_size`` is only the length of
the training windows: the recurrence itself has no limit on context.

Generation does not need a KV cache: the hidden state *is* the memory of the
prefix. ``new_caches()`` gives a ``RecurrentState`` that ``forward`` carries
from call to call, so each new token costs one step.
"""

from dataclasses import asdict, dataclass


from ..autograd import Tensor, as_array
from ..nn import LSTM, RNN, Dropout, Embedding, Linear, Module
from ..nn import functional as F
from ..rng import get_rng
from ..validation import check_fields, check_value

CELLS = ("rnn", "lstm")


@dataclass
class RNNLMConfig:
    """``n_hidden`` (default: ``n_embd``) is the state's width; ``bptt_steps`` truncates BPTT inside a window."""

    vocab_size: int = 65
    block_size: int = 64
    cell: str = "lstm"
    n_layer: int = 2
    n_embd: int = 128
    n_hidden: int = None
    dropout: float = 0.0
    bptt_steps: int = None

    def __post_init__(self):
        if self.n_hidden is None:
            self.n_hidden = self.n_embd
        if self.cell not in CELLS:
            raise ValueError(f"RNNLMConfig: cell must be one of {CELLS}, got {self.cell!r}")
        size = (int, "[1, inf)")
        check_fields(self, {"vocab_size": size, "block_size": size, "n_layer": size, "n_embd": size, "n_hidden": size,
                            "dropout": (float, "[0, 1)")})
        if self.bptt_steps is not None:  # None: back-propagate through the whole window
            self.bptt_steps = check_value("RNNLMConfig: bptt_steps", self.bptt_steps, int, "[1, inf)")

    def to_dict(self):
        return asdict(self)


class RecurrentState:
    """What a recurrent model remembers of the tokens it has read: its state, and how many tokens that was.

    ``length`` mirrors ``KVCache.length``, so ``generate`` can treat both alike.
    """

    def __init__(self):
        self.state = None  # h (num_layers, B, H), or (h, c) for an LSTM; arrays
        self.length = 0


class RNNLM(Module):
    def __init__(self, config: RNNLMConfig):
        super().__init__()
        self.config = c = config
        self.wte = Embedding(c.vocab_size, c.n_embd)
        self.wte.weight.data[...] = get_rng().normal(0.0, 0.1, self.wte.weight.shape)  # N(0, 1) would saturate tanh
        self.drop = Dropout(c.dropout)
        layer = LSTM if c.cell == "lstm" else RNN
        self.rnn = layer(c.n_embd, c.n_hidden, num_layers=c.n_layer, batch_first=True, dropout=c.dropout)
        self.lm_head = Linear(c.n_hidden, c.vocab_size)

    def new_caches(self):
        """The state to hand to ``forward(caches=...)`` when generating (one for the whole stack)."""
        return [RecurrentState()]

    def forward(self, idx, targets=None, caches=None):
        """Logits for the next token at each position, and the loss if ``targets`` is given.

        ``idx`` (B, T) token ids. Without targets only the last position's logits
        are returned (what generation needs). ``caches`` (from ``new_caches``)
        starts from the state the previous call left and stores the new one.
        """
        idx = as_array(idx)
        if idx.ndim != 2:
            raise ValueError(f"RNNLM: idx must have shape (batch, time), got {idx.shape}")
        B, T = idx.shape
        memory = caches[0] if caches else None
        hx = None
        if memory is not None and memory.state is not None:
            hx = tuple(Tensor(s) for s in memory.state) if self.config.cell == "lstm" else Tensor(memory.state)
        x = self.drop(self.wte(idx))  # (B, T, n_embd)
        out, final = self.rnn(x, hx, bptt_steps=self.config.bptt_steps)  # (B, T, n_hidden)
        if memory is not None:
            memory.state = tuple(s.data for s in final) if self.config.cell == "lstm" else final.data
            memory.length += T
        out = self.drop(out)
        if targets is None:
            return self.lm_head(out[:, -1:, :]), None  # (B, 1, V)
        logits = self.lm_head(out)  # (B, T, V)
        targets = as_array(targets)
        if targets.shape != (B, T):
            raise ValueError(f"RNNLM: targets must have the shape of idx {(B, T)}, got {targets.shape}")
        loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def optimizer_groups(self, weight_decay):
        """Parameter groups for AdamW: decay on matrices, none on biases (as ``GPT.optimizer_groups``)."""
        decay = [p for _, p in self.named_parameters() if p.ndim >= 2]
        no_decay = [p for _, p in self.named_parameters() if p.ndim < 2]
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
