"""The seed article's model: one embedding, one multi-head attention layer, one output layer.

    x (L, N, input_dim) -> embedding: Linear(input_dim, hidden_dim)      (L, N, hidden_dim)
                        -> attention: MultiheadAttention(hidden_dim, n_heads), self-attention
                        -> fc: Linear(hidden_dim, output_dim)              (L, N, output_dim)

The article writes it in PyTorch with ``nn.MultiheadAttention(embedding_dim=hidden_dim,
num_heads=n_heads)``; PyTorch's keyword is ``embed_dim``, so that line raises a
TypeError as printed. With the keyword corrected, the article's class and this
one have the same parameter names, and loading its state dict here gives the
same outputs and gradients (tests/models/test_simple_transformer.py checks it).
Like PyTorch's default (``batch_first=False``), the sequence axis comes first.
There are no positional encodings, residual connections or normalisation: the
later models add them.
"""

from ..nn import Linear, Module, MultiheadAttention


class SeedTransformer(Module):
    """The seed article's model, with its parameter names (see the module docstring)."""

    def __init__(self, input_dim, output_dim, hidden_dim, n_heads):
        super().__init__()
        self.embedding = Linear(input_dim, hidden_dim)
        self.attention = MultiheadAttention(hidden_dim, n_heads)
        self.fc = Linear(hidden_dim, output_dim)

    def forward(self, x):
        x = self.embedding(x)  # (L, N, hidden_dim)
        x, _ = self.attention(x, x, x)  # (L, N, hidden_dim); the averaged weights are not used
        return self.fc(x)  # (L, N, output_dim)
