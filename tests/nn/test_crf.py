"""The linear-chain CRF: log Z and Viterbi against brute-force enumeration of all K^T paths, the fused
backward against central differences, the composed twin and a brute-force PyTorch autograd, padding,
pytorch-crf's reductions, dtypes and errors."""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import tinytransformer as tt
from tinytransformer.nn import CRF
from tinytransformer.nn.crf import crf_log_partition, crf_log_partition_composed

TOL = 1e-12


def _problem(seed, lengths, K, dtype=np.float64):
    """Random emissions (B, T, K), CRF parameters, tags (B, T) and the mask of the given lengths."""
    rng = np.random.default_rng(seed)
    B, T = len(lengths), max(lengths)
    mask = np.arange(T) < np.array(lengths)[:, None]  # (B, T), True at real tokens
    emissions = rng.normal(size=(B, T, K)).astype(dtype)
    params = rng.normal(size=(K, K)).astype(dtype), rng.normal(size=K).astype(dtype), rng.normal(size=K).astype(dtype)
    tags = np.where(mask, rng.integers(0, K, (B, T)), -100)
    return emissions, params, tags, mask


def _path_score(e, A, start, end, path):
    """score(y) of one path over the first len(path) rows of e (T, K), written out."""
    s = start[path[0]] + e[0, path[0]] + end[path[-1]]
    return s + sum(e[t, path[t]] + A[path[t - 1], path[t]] for t in range(1, len(path)))


def _brute_force(e, A, start, end, n):
    """(log Z, best path) of one row of length n, from all K^n paths."""
    paths = list(itertools.product(range(e.shape[1]), repeat=n))
    scores = np.array([_path_score(e, A, start, end, p) for p in paths])
    m = scores.max()
    return m + np.log(np.exp(scores - m).sum()), list(paths[int(scores.argmax())])


def _crf(params, K, dtype=np.float64):
    crf = CRF(K, dtype=dtype)
    A, start, end = params
    crf.load_state_dict({"transitions": A, "start_transitions": start, "end_transitions": end})
    return crf


@given(K=st.integers(1, 4), lengths=st.lists(st.integers(1, 4), min_size=1, max_size=4), seed=st.integers(0, 99))
def test_log_partition_matches_brute_force(K, lengths, seed):
    emissions, (A, start, end), _, mask = _problem(seed, lengths, K)
    for log_partition in (crf_log_partition, crf_log_partition_composed):
        got = log_partition(tt.Tensor(emissions), tt.Tensor(A), tt.Tensor(start), tt.Tensor(end), mask).data
        want = [_brute_force(emissions[b], A, start, end, n)[0] for b, n in enumerate(lengths)]
        np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)


@given(K=st.integers(1, 4), lengths=st.lists(st.integers(1, 4), min_size=1, max_size=4), seed=st.integers(0, 99))
def test_viterbi_matches_brute_force_argmax(K, lengths, seed):
    emissions, params, _, mask = _problem(seed, lengths, K)
    paths = _crf(params, K).decode(tt.Tensor(emissions), mask)
    assert paths == [_brute_force(emissions[b], *params, n)[1] for b, n in enumerate(lengths)]


def test_log_likelihood_is_score_minus_log_partition_and_sums_to_one():
    K, lengths = 3, [4, 2, 1, 3]
    emissions, params, tags, mask = _problem(0, lengths, K)
    crf = _crf(params, K)
    llh = crf.log_likelihood(tt.Tensor(emissions), tags, mask).data  # (B,)
    for b, n in enumerate(lengths):
        log_z, _ = _brute_force(emissions[b], *params, n)
        assert llh[b] == pytest.approx(_path_score(emissions[b], *params, tags[b, :n]) - log_z, abs=TOL)
        every = [crf.log_likelihood(tt.Tensor(emissions[b:b + 1, :n]), np.array([p])).item()
                 for p in itertools.product(range(K), repeat=n)]
        assert np.exp(every).sum() == pytest.approx(1.0, abs=TOL)  # a distribution over all K^n sequences


def test_fused_backward_passes_gradcheck_and_equals_the_composed_twin():
    K, lengths = 3, [4, 2, 1, 3]
    emissions, params, _, mask = _problem(1, lengths, K)
    inputs = [tt.Tensor(a.copy(), requires_grad=True) for a in (emissions, *params)]
    assert tt.gradcheck(lambda *x: crf_log_partition(*x, mask), inputs)
    assert tt.gradcheck(lambda *x: crf_log_partition_composed(*x, mask), inputs)
    grads = []
    for log_partition in (crf_log_partition, crf_log_partition_composed):
        for t in inputs:
            t.grad = None
        log_partition(*inputs, mask).backward(np.array([0.5, -1.0, 2.0, 1.5]))
        grads.append([t.grad for t in inputs])
    for fused, composed in zip(*grads):
        np.testing.assert_allclose(fused, composed, rtol=TOL, atol=TOL)
    assert np.all(grads[0][0][~mask] == 0)  # padding's emissions get no gradient


def test_log_likelihood_gradients_match_torch_brute_force():
    """PyTorch's autograd through the sum over all K^T paths: an independent check of every gradient."""
    K, lengths = 3, [3, 2, 1]
    emissions, params, tags, mask = _problem(2, lengths, K)
    crf = _crf(params, K)
    e = tt.Tensor(emissions.copy(), requires_grad=True)
    crf.log_likelihood(e, tags, mask).sum().backward()

    te = torch.tensor(emissions, requires_grad=True)
    tA, ts, tend = [torch.tensor(p, requires_grad=True) for p in params]
    total = 0
    for b, n in enumerate(lengths):
        def score(path, b=b):
            return _path_score(te[b], tA, ts, tend, list(path))
        log_z = torch.logsumexp(torch.stack([score(p) for p in itertools.product(range(K), repeat=n)]), 0)
        total = total + score(tags[b, :n]) - log_z
    total.backward()
    for ours, theirs in [(e.grad, te.grad), (crf.transitions.grad, tA.grad), (crf.start_transitions.grad, ts.grad),
                         (crf.end_transitions.grad, tend.grad)]:
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=TOL, atol=TOL)


def test_padding_never_changes_a_row():
    K, lengths = 4, [2, 5, 3]
    emissions, params, tags, mask = _problem(3, lengths, K)
    crf = _crf(params, K)
    batched = crf.log_likelihood(tt.Tensor(emissions), tags, mask).data
    decoded = crf.decode(tt.Tensor(emissions), mask)
    for b, n in enumerate(lengths):
        alone = tt.Tensor(emissions[b:b + 1, :n])
        assert batched[b] == pytest.approx(crf.log_likelihood(alone, tags[b:b + 1, :n]).item(), abs=TOL)
        assert decoded[b] == crf.decode(alone)[0] and len(decoded[b]) == n


def test_reductions_follow_pytorch_crf():
    K, lengths = 3, [3, 1, 2]
    emissions, params, tags, mask = _problem(4, lengths, K)
    crf, e = _crf(params, K), tt.Tensor(emissions)
    llh = crf(e, tags, mask, reduction="none").data
    assert crf(e, tags, mask).item() == pytest.approx(llh.sum())  # pytorch-crf's default: 'sum'
    assert crf(e, tags, mask, reduction="mean").item() == pytest.approx(llh.mean())
    assert crf(e, tags, mask, reduction="token_mean").item() == pytest.approx(llh.sum() / sum(lengths))


def test_float32_stays_float32_and_names_follow_pytorch_crf():
    tt.manual_seed(0)
    crf = CRF(5)
    assert set(crf.state_dict()) == {"transitions", "start_transitions", "end_transitions"}
    assert all(np.abs(p.data).max() <= 0.1 for p in crf.parameters())  # U(-0.1, 0.1), as pytorch-crf
    emissions, _, tags, mask = _problem(5, [3, 2], 5, dtype=np.float32)
    e = tt.Tensor(emissions, requires_grad=True)
    loss = -crf.log_likelihood(e, tags, mask).mean()
    loss.backward()
    assert loss.dtype == np.float32 and e.grad.dtype == np.float32 and crf.transitions.grad.dtype == np.float32


def test_long_sequences_and_large_scores_stay_finite():
    crf = _crf((np.full((3, 3), 50.0), np.zeros(3), np.zeros(3)), 3)
    emissions = np.random.default_rng(0).normal(scale=1e3, size=(2, 200, 3))
    llh = crf.log_likelihood(tt.Tensor(emissions), np.zeros((2, 200), dtype=np.int64))
    assert np.isfinite(llh.data).all() and (llh.data <= 1e-9).all()


@pytest.mark.parametrize("call, message", [
    (lambda crf, e, t, m: crf.log_likelihood(e, t, m[:, ::-1].copy()), "real first token"),
    (lambda crf, e, t, m: crf.log_likelihood(e, t, np.array([[1, 0, 1], [1, 1, 0]], dtype=bool)), "on the right"),
    (lambda crf, e, t, m: crf.log_likelihood(e, t, m.astype(int)), "boolean"),
    (lambda crf, e, t, m: crf.log_likelihood(e, np.where(m, 7, 0), m), "must lie in"),
    (lambda crf, e, t, m: crf.log_likelihood(e, t[:, :2], m), "tags must have shape"),
    (lambda crf, e, t, m: crf.decode(e[:, :, :2], m), "num_tags=3"),
    (lambda crf, e, t, m: crf(e, t, m, reduction="avg"), "reduction"),
])
def test_errors_name_the_problem(call, message):
    emissions, params, tags, mask = _problem(6, [3, 2], 3)
    with pytest.raises((ValueError, TypeError), match=message):
        call(_crf(params, 3), tt.Tensor(emissions), tags, mask)
