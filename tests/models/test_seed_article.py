"""The seed article's Transformer: same outputs and gradients as the article's PyTorch class."""

import numpy as np
import pytest
import torch

import tinytransformer as tt
from tinytransformer.models import SeedTransformer


class ArticleTransformer(torch.nn.Module):
    """The article's class, with its one bug fixed: it wrote nn.MultiheadAttention(embedding_dim=...)."""

    def __init__(self, input_dim, output_dim, hidden_dim, n_heads):
        super().__init__()
        self.embedding = torch.nn.Linear(input_dim, hidden_dim)
        self.attention = torch.nn.MultiheadAttention(embed_dim=hidden_dim, num_heads=n_heads)
        self.fc = torch.nn.Linear(hidden_dim, output_dim)

    def forward(self, x):
        x = self.embedding(x)
        x, _ = self.attention(x, x, x)
        x = self.fc(x)
        return x


def test_article_typo_is_real():
    with pytest.raises(TypeError, match="embedding_dim"):
        torch.nn.MultiheadAttention(embedding_dim=8, num_heads=2)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_same_outputs_and_gradients_as_the_article(dtype, rng):
    torch.manual_seed(0)
    theirs = ArticleTransformer(input_dim=5, output_dim=3, hidden_dim=8, n_heads=2)
    theirs = theirs.to(torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        theirs.attention.in_proj_bias.normal_()  # PyTorch starts these at zero; make them count
        theirs.attention.out_proj.bias.normal_()
    ours = SeedTransformer(input_dim=5, output_dim=3, hidden_dim=8, n_heads=2).to(dtype)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})

    x = rng.standard_normal((6, 4, 5)).astype(dtype)  # (seq, batch, input_dim), PyTorch's default layout
    xt, xtt = tt.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, expected = ours(xt), theirs(xtt)
    assert out.shape == (6, 4, 3) and out.dtype == dtype
    tol = 1e-10 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=tol, atol=tol)
    target = rng.standard_normal(out.shape).astype(dtype)
    ((out - target) ** 2).mean().backward()
    ((expected - torch.tensor(target)) ** 2).mean().backward()
    np.testing.assert_allclose(xt.grad, xtt.grad.numpy(), rtol=tol, atol=tol)
    their_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, their_params[name].grad.numpy(), rtol=tol, atol=tol, err_msg=name)


def test_simple_transformer_gradcheck_and_bad_input(rng):
    model = SeedTransformer(3, 2, 4, 2).double()
    for p in model.parameters():
        p.data[...] = rng.normal(0.0, 0.7, p.shape)
    x = tt.Tensor(rng.standard_normal((3, 2, 3)), requires_grad=True)
    tt.gradcheck(lambda x, *params: model(x), [x, *model.parameters()])
    with pytest.raises(ValueError, match=r"embed_dim=4 must be a positive multiple of num_heads=3"):
        SeedTransformer(3, 2, 4, 3)
    with pytest.raises(ValueError, match=r"linear: input has 4 features \(shape \(3, 2, 4\)\) but the weight expects 3"):
        model(tt.zeros(3, 2, 4, dtype=np.float64))
