"""Recurrent layers: the Elman RNN and the LSTM, one step at a time and over a whole sequence.

A recurrent network reads a sequence one element at a time and carries what it
has seen in a hidden state h (B, H). The Elman RNN (Elman 1990):

    h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)

The LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al.
2000) adds a cell state c that is only ever scaled and added to, gated by
four pre-activations in PyTorch's order i, f, g, o:

    [a_i, a_f, a_g, a_o] = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh       (B, 4H), split in four
    i = sigmoid(a_i)  f = sigmoid(a_f)  g = tanh(a_g)  o = sigmoid(a_o)      input, forget, candidate, output
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

Backpropagation through time (BPTT, Werbos 1990) is the chain rule over the
unrolled loop: the gradient reaching h_{t-1} is what step t's loss sends plus
what step t sends back through the recurrence. For the RNN,

    dL/da_t     = (dL/dh_t) * (1 - h_t^2)               a_t: the pre-activation of step t
    dL/dh_{t-1} += dL/da_t W_hh                         the recurrence: one matrix product per step back

so a gradient travelling k steps back is multiplied by k Jacobians
diag(1 - h^2) W_hh and usually shrinks geometrically (vanishing gradients,
Bengio et al. 1994). Through the LSTM's cell it is multiplied by f instead,
which the network can hold near 1 (lesson 13 plots both).

Truncated BPTT (Williams & Peng 1990): with ``bptt_steps=k`` the state handed
from step t-1 to step t, for t a positive multiple of k, is treated as a
constant (detached). Outputs are unchanged; gradients are exactly those of
running the sequence in chunks of k steps and detaching the state between
chunks, so no gradient travels back more than k steps and across a boundary.

Two paths, as elsewhere in the library: ``rnn_cell``/``lstm_cell`` (and the
``RNNCell``/``LSTMCell`` layers) build one step from autograd primitives, whose
backward autograd derives; the ``RNN``/``LSTM`` layers run the whole sequence
as one Function (``RNNSequence``/``LSTMSequence``) with BPTT written out by
hand, one matrix product per step. The tests hold the two, and PyTorch's
``nn.RNN``/``nn.LSTM`` (same parameter names), to each other.
"""

import math

import numpy as np

from ..autograd import Function, Tensor, stack
from ..rng import get_rng
from ..validation import check_value
from .dropout import Dropout
from .linear import linear
from .module import Module, Parameter

NONLINEARITIES = ("tanh", "relu")


# ------------------------------------------------------------------ one step, composed
def rnn_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    """One Elman step: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu); x (B, I), h (B, H) -> (B, H)."""
    a = linear(input, w_ih, b_ih) + linear(hx, w_hh, b_hh)  # (B, H)
    return a.tanh() if nonlinearity == "tanh" else a.relu()


def lstm_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    """One LSTM step: (h, c) -> (h', c'), each (B, H); see the module docstring for the gates."""
    h, c = hx
    gates = linear(input, w_ih, b_ih) + linear(h, w_hh, b_hh)  # (B, 4H)
    a_i, a_f, a_g, a_o = gates.split(h.shape[-1], axis=-1)  # 4 x (B, H)
    i, f, g, o = a_i.sigmoid(), a_f.sigmoid(), a_g.tanh(), a_o.sigmoid()
    c = f * c + i * g  # (B, H)
    return o * c.tanh(), c


# ------------------------------------------------------------------ whole sequence, fused
def _cut(t, bptt_steps):
    """True when the state entering step t is detached (truncated BPTT)."""
    return bptt_steps is not None and t > 0 and t % bptt_steps == 0


class RNNSequence(Function):
    """h_t = act(x_t W_ih^T + b + h_{t-1} W_hh^T) for t = 0 .. T-1, and its BPTT, in one op.

    x (T, B, I), h0 (B, H) -> every h_t, (T, B, H). The input projection of all
    steps is one matrix product; only the recurrence is a loop. Backward walks
    the steps in reverse, carrying dL/dh_{t-1}, then forms the weight gradients
    with one product each over all steps: dW_hh = sum_t da_t^T h_{t-1}.
    """

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh", bptt_steps=None):
        a = x @ w_ih.T  # (T, B, H): every step's input projection at once
        for b in (b_ih, b_hh):
            if b is not None:
                a += b
        hs = np.empty_like(a)  # (T, B, H)
        h = h0
        for t in range(len(x)):
            h = a[t] + h @ w_hh.T  # (B, H)
            h = np.tanh(h) if nonlinearity == "tanh" else np.maximum(h, 0)
            hs[t] = h
        ctx.x, ctx.h0, ctx.hs, ctx.w_ih, ctx.w_hh = x, h0, hs, w_ih, w_hh
        ctx.nonlinearity, ctx.bptt_steps = nonlinearity, bptt_steps
        return hs

    @staticmethod
    def backward(ctx, grad):
        x, hs, w_hh = ctx.x, ctx.hs, ctx.w_hh
        slope = 1 - hs * hs if ctx.nonlinearity == "tanh" else (hs > 0).astype(hs.dtype)  # act'(a_t), (T, B, H)
        da = np.empty_like(hs)  # dL/da_t, (T, B, H)
        dh = np.zeros_like(ctx.h0)  # dL/dh_{t} arriving from step t+1
        for t in reversed(range(len(x))):
            da[t] = (grad[t] + dh) * slope[t]
            dh = np.zeros_like(dh) if _cut(t, ctx.bptt_steps) else da[t] @ w_hh  # (B, H): to h_{t-1}
        h_prev = np.concatenate([ctx.h0[None], hs[:-1]])  # (T, B, H): the state each step started from
        return _sequence_grads(ctx, da, h_prev, dh, ctx.needs_input_grad + (False,) * 6)


def _sequence_grads(ctx, da, h_prev, dh0, need):
    """Gradients of x, h0, W_ih, W_hh, b_ih, b_hh (``need`` says which, in that order) from the
    pre-activation gradients da (T, B, G)."""
    flat = da.reshape(-1, da.shape[-1])  # (T*B, G)
    dx = da @ ctx.w_ih if need[0] else None  # (T, B, I)
    dw_ih = flat.T @ ctx.x.reshape(-1, ctx.x.shape[-1]) if need[2] else None  # (G, I)
    dw_hh = flat.T @ h_prev.reshape(-1, h_prev.shape[-1]) if need[3] else None  # (G, H)
    db = flat.sum(axis=0)  # (G,): both biases are added to the same pre-activation
    return dx, dh0 if need[1] else None, dw_ih, dw_hh, db if need[4] else None, db if need[5] else None


class LSTMSequence(Function):
    """The LSTM over a whole sequence and its BPTT in one op.

    x (T, B, I), h0 and c0 (B, H) -> (T, B, 2H): every step's h_t and c_t side
    by side, so both the outputs and the final cell state can receive
    gradients. Backward, per step in reverse, with dh and dc arriving from the
    step after (see the module docstring for the forward):

        dc   = dL/dc_t + dc_next + dh * o * (1 - tanh(c_t)^2)
        do   = dh * tanh(c_t)      di = dc * g      dg = dc * i      df = dc * c_{t-1}
        da   = [di i(1-i), df f(1-f), dg (1-g^2), do o(1-o)]            sigmoid' = s(1-s), tanh' = 1 - tanh^2
        dh_{t-1} = da W_hh         dc_{t-1} = dc * f                    the cell's path: one product by f per step
    """

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, bptt_steps=None):
        T, H = len(x), h0.shape[-1]
        a = x @ w_ih.T  # (T, B, 4H)
        for b in (b_ih, b_hh):
            if b is not None:
                a += b
        gates = np.empty_like(a)  # i, f, g, o of every step, (T, B, 4H)
        out = np.empty(a.shape[:-1] + (2 * H,), dtype=a.dtype)  # [h_t | c_t], (T, B, 2H)
        h, c = h0, c0
        for t in range(T):
            z = a[t] + h @ w_hh.T  # (B, 4H)
            s = 0.5 * (1 + np.tanh(0.5 * z))  # sigmoid(z), without overflow; g takes tanh instead
            s[:, 2 * H : 3 * H] = np.tanh(z[:, 2 * H : 3 * H])
            i, f, g, o = s[:, :H], s[:, H : 2 * H], s[:, 2 * H : 3 * H], s[:, 3 * H :]
            c = f * c + i * g  # (B, H)
            h = o * np.tanh(c)  # (B, H)
            gates[t], out[t, :, :H], out[t, :, H:] = s, h, c
        ctx.x, ctx.h0, ctx.c0, ctx.w_ih, ctx.w_hh, ctx.gates, ctx.out = x, h0, c0, w_ih, w_hh, gates, out
        ctx.bptt_steps = bptt_steps
        return out

    @staticmethod
    def backward(ctx, grad):
        H = ctx.h0.shape[-1]
        gates, out, w_hh = ctx.gates, ctx.out, ctx.w_hh
        hs, cs = out[..., :H], out[..., H:]  # (T, B, H) each
        c_prev = np.concatenate([ctx.c0[None], cs[:-1]])  # (T, B, H)
        da = np.empty_like(gates)  # (T, B, 4H)
        dh, dc_next = np.zeros_like(ctx.h0), np.zeros_like(ctx.c0)
        for t in reversed(range(len(gates))):
            i, f, g, o = (gates[t, :, k * H : (k + 1) * H] for k in range(4))
            tanh_c = np.tanh(cs[t])
            dh = grad[t, :, :H] + dh
            dc = grad[t, :, H:] + dc_next + dh * o * (1 - tanh_c * tanh_c)
            da[t, :, :H] = dc * g * i * (1 - i)
            da[t, :, H : 2 * H] = dc * c_prev[t] * f * (1 - f)
            da[t, :, 2 * H : 3 * H] = dc * i * (1 - g * g)
            da[t, :, 3 * H :] = dh * tanh_c * o * (1 - o)
            if _cut(t, ctx.bptt_steps):
                dh, dc_next = np.zeros_like(dh), np.zeros_like(dc_next)
            else:
                dh, dc_next = da[t] @ w_hh, dc * f  # (B, H) each: to h_{t-1} and c_{t-1}
        h_prev = np.concatenate([ctx.h0[None], hs[:-1]])  # (T, B, H)
        need = ctx.needs_input_grad + (False,) * 7  # x, h0, c0, W_ih, W_hh, b_ih, b_hh
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh = _sequence_grads(ctx, da, h_prev, dh, need[:2] + need[3:])
        return dx, dh0, dc_next if need[2] else None, dw_ih, dw_hh, db_ih, db_hh


# ------------------------------------------------------------------ layers
def _uniform(rng, shape, hidden_size, dtype):
    """PyTorch's initialisation of every recurrent weight and bias: U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1 / math.sqrt(hidden_size)
    return Parameter(rng.uniform(-bound, bound, shape).astype(dtype))


def _check_sizes(name, input_size, hidden_size, num_layers=1):
    """The three sizes as positive ints (8.0 -> 8), or a ValueError naming the one that is not."""
    sizes = {"input_size": input_size, "hidden_size": hidden_size, "num_layers": num_layers}
    return [check_value(f"{name}: {key}", value, int, "[1, inf)") for key, value in sizes.items()]


class _CellBase(Module):
    gate_count = 1

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float32):
        super().__init__()
        input_size, hidden_size, _ = _check_sizes(type(self).__name__, input_size, hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        rng, G = get_rng(), self.gate_count * hidden_size
        self.weight_ih = _uniform(rng, (G, input_size), hidden_size, dtype)
        self.weight_hh = _uniform(rng, (G, hidden_size), hidden_size, dtype)
        self.bias_ih = _uniform(rng, (G,), hidden_size, dtype) if bias else None
        self.bias_hh = _uniform(rng, (G,), hidden_size, dtype) if bias else None

    def _check(self, input, hx):
        name = type(self).__name__
        if input.ndim != 2 or input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input must be (batch, {self.input_size}), got shape {input.shape}")
        for h in hx:
            if h.shape != (input.shape[0], self.hidden_size):
                raise ValueError(
                    f"{name}: the state must be (batch, hidden_size) = {(input.shape[0], self.hidden_size)}, "
                    f"got shape {h.shape}"
                )

    def _zeros(self, input):
        return Tensor(np.zeros((input.shape[0], self.hidden_size), dtype=input.dtype))

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias_ih is not None}"


class RNNCell(_CellBase):
    """One Elman step as a layer (``torch.nn.RNNCell``): ``cell(x, h) -> h'``; x (B, I), h (B, H), zeros if None."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", dtype=np.float32):
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"RNNCell: nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        hx = self._zeros(input) if hx is None else hx
        self._check(input, (hx,))
        return rnn_cell(input, hx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.nonlinearity)


class LSTMCell(_CellBase):
    """One LSTM step as a layer (``torch.nn.LSTMCell``): ``cell(x, (h, c)) -> (h', c')``, zeros if None."""

    gate_count = 4

    def forward(self, input, hx=None):
        hx = (self._zeros(input), self._zeros(input)) if hx is None else hx
        self._check(input, hx)
        return lstm_cell(input, hx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


class _RecurrentBase(Module):
    """A stack of ``num_layers`` recurrent layers over a sequence, PyTorch's ``nn.RNN``/``nn.LSTM`` layout.

    Parameters ``weight_ih_l{k}`` (G, I or H), ``weight_hh_l{k}`` (G, H),
    ``bias_ih_l{k}``, ``bias_hh_l{k}`` (G,), with G = H (RNN) or 4H (LSTM).
    Input (T, B, I), or (B, T, I) with ``batch_first=True``, or unbatched
    (T, I); the initial state is (num_layers, B, H) per state tensor, zeros if
    not given. ``dropout`` acts on the outputs of every layer but the last.
    """

    gate_count = 1

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 dtype=np.float32):
        super().__init__()
        input_size, hidden_size, num_layers = _check_sizes(type(self).__name__, input_size, hidden_size, num_layers)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first = bias, batch_first
        self.dropout = Dropout(dropout)
        rng, G = get_rng(), self.gate_count * hidden_size
        for k in range(num_layers):
            width = input_size if k == 0 else hidden_size
            setattr(self, f"weight_ih_l{k}", _uniform(rng, (G, width), hidden_size, dtype))
            setattr(self, f"weight_hh_l{k}", _uniform(rng, (G, hidden_size), hidden_size, dtype))
            if bias:
                setattr(self, f"bias_ih_l{k}", _uniform(rng, (G,), hidden_size, dtype))
                setattr(self, f"bias_hh_l{k}", _uniform(rng, (G,), hidden_size, dtype))

    def layer_weights(self, k):
        """The four parameters of layer k: (W_ih, W_hh, b_ih, b_hh), the biases None without bias."""
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        return tuple(getattr(self, f"{n}_l{k}", None) for n in names)

    def _prepare(self, input, states):
        """Input as (T, B, I) and each state as (num_layers, B, H), checked; ``unbatched`` for the way back."""
        name = type(self).__name__
        if input.ndim not in (2, 3) or input.shape[-1] != self.input_size:
            layout = "(B, T" if self.batch_first else "(T, B"
            raise ValueError(
                f"{name}: input must be {layout}, {self.input_size}) or unbatched (T, {self.input_size}), "
                f"got shape {input.shape}"
            )
        unbatched = input.ndim == 2
        if unbatched:
            input = input.unsqueeze(1)  # (T, 1, I)
            states = [None if s is None else s.unsqueeze(1) for s in states]
        elif self.batch_first:
            input = input.transpose(0, 1)  # (T, B, I)
        shape = (self.num_layers, input.shape[1], self.hidden_size)
        checked = []
        for s in states:
            if s is None:
                s = Tensor(np.zeros(shape, dtype=input.dtype))
            elif s.shape != shape:
                raise ValueError(f"{name}: initial state must be (num_layers, B, H) = {shape}, got shape {s.shape}")
            checked.append(s)
        return input, checked, unbatched

    def _finish(self, output, finals, unbatched):
        """Back to the caller's layout: output (T, B, H) and each final state (num_layers, B, H)."""
        finals = [stack(f, axis=0) for f in finals]  # (num_layers, B, H) each
        if unbatched:
            return output.squeeze(1), [f.squeeze(1) for f in finals]
        if self.batch_first:
            output = output.transpose(0, 1)  # (B, T, H)
        return output, finals

    def extra_repr(self):
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, bias={self.bias}, "
                f"batch_first={self.batch_first}")


def _check_bptt(name, bptt_steps):
    """None (back-propagate through every step) or a positive int."""
    return check_value(f"{name}: bptt_steps", bptt_steps, int, "[1, inf)", optional=True)


class RNN(_RecurrentBase):
    """A multi-layer Elman RNN (``torch.nn.RNN``): ``rnn(x, h0) -> (output, h_n)``.

    output holds the last layer's h_t for every step; h_n (num_layers, B, H)
    the final state of every layer. ``bptt_steps`` truncates backpropagation
    through time (see the module docstring).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, dtype=np.float32):
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"RNN: nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None, bptt_steps=None):
        bptt_steps = _check_bptt("RNN", bptt_steps)
        x, (h0,), unbatched = self._prepare(input, [hx])
        finals = []
        for k in range(self.num_layers):
            if k > 0:
                x = self.dropout(x)
            x = RNNSequence.apply(
                x, h0[k], *self.layer_weights(k), nonlinearity=self.nonlinearity, bptt_steps=bptt_steps
            )  # (T, B, H)
            finals.append(x[-1])
        output, (h_n,) = self._finish(x, [finals], unbatched)
        return output, h_n


class LSTM(_RecurrentBase):
    """A multi-layer LSTM (``torch.nn.LSTM``): ``lstm(x, (h0, c0)) -> (output, (h_n, c_n))``.

    Gates in PyTorch's order i, f, g, o along the rows of every weight.
    ``bptt_steps`` truncates backpropagation through time (module docstring).
    """

    gate_count = 4

    def forward(self, input, hx=None, bptt_steps=None):
        bptt_steps = _check_bptt("LSTM", bptt_steps)
        H = self.hidden_size
        x, (h0, c0), unbatched = self._prepare(input, [None, None] if hx is None else list(hx))
        h_finals, c_finals = [], []
        for k in range(self.num_layers):
            if k > 0:
                x = self.dropout(x)
            hc = LSTMSequence.apply(x, h0[k], c0[k], *self.layer_weights(k), bptt_steps=bptt_steps)  # (T, B, 2H)
            x = hc[:, :, :H]  # (T, B, H): the outputs h_t
            h_finals.append(hc[-1, :, :H])
            c_finals.append(hc[-1, :, H:])
        output, (h_n, c_n) = self._finish(x, [h_finals, c_finals], unbatched)
        return output, (h_n, c_n)
