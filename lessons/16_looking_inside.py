# %% [markdown]
# # 16 · Looking inside
#
# A trained model is a few hundred thousand numbers. Three tools turn some of them into
# pictures, each answering a narrower question than it seems to:
#
# - **attention maps**: for each layer and head, how much each position attends to
#   each earlier one (`softmax(q k^T / sqrt(d))`, the rows sum to 1);
# - **the logit lens**: what each layer would predict if the model stopped there
#   (`lm_head(ln_f(x_l))` on the residual stream after block `l`);
# - **attributions**: which input tokens pushed a prediction up or down (gradient x
#   input, and integrated gradients).
#
# To know whether a tool tells the truth, we need a model whose mechanism we know.
# So we first train one on a task with a known answer: **copying**. Then we use the
# same tools on a classifier, and end with what none of them can tell.

# %%
import matplotlib.pyplot as plt
import numpy as np
from course import figure_path, steps

import tinytransformer as tt
from tinytransformer.interpret import (
    attention_maps, logit_lens, plot_attention_maps, plot_attribution, plot_logit_lens, token_attribution,
)
from tinytransformer.kernels import set_num_threads
from tinytransformer.models.gpt import GPT, GPTConfig
from tinytransformer.models.heads import SequenceClassifier
from tinytransformer.optim import AdamW

set_num_threads(1)  # small models: one thread is fastest

# %% [markdown]
# ## A model that copies
#
# Each sequence is `K` random symbols, a separator `|`, then the same `K` symbols again.
# The first half cannot be predicted; the second half can, but only by looking back
# exactly `K` positions: to predict the token after position `t` (in the second half)
# the model must read position `t - K`. Only the second half is scored (targets `-1`
# are ignored by the loss).

# %%
V, K = 10, 8
SEP = V  # the separator gets the last id
SYMBOLS = "abcdefghij|"


def episodes(n, rng):
    first = rng.integers(0, V, (n, K))
    seq = np.concatenate([first, np.full((n, 1), SEP), first], axis=1)  # (n, 2K + 1)
    x, y = seq[:, :-1], seq[:, 1:].copy()  # (n, 2K) each
    y[:, :K] = -1  # the first half is random: not scored
    return x, y


tt.manual_seed(0)
rng = np.random.default_rng(0)
copier = GPT(GPTConfig(vocab_size=V + 1, block_size=2 * K, n_layer=2, n_head=2, n_embd=32))
optimizer = AdamW(copier.optimizer_groups(0.0), lr=3e-3)
for _ in range(steps(600, 220)):
    x, y = episodes(32, rng)
    _, loss = copier(x, y)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
x_test, y_test = episodes(200, np.random.default_rng(1))
with tt.no_grad():
    logits, test_loss = copier(x_test, y_test)
scored = y_test >= 0
accuracy = (logits.data.argmax(-1)[scored] == y_test[scored]).mean()
print(f"copy accuracy on new sequences: {accuracy:.1%} (loss {test_loss.item():.4f})")
assert accuracy > 0.95


def show(ids):
    return [SYMBOLS[i] for i in ids]


# %% [markdown]
# ## Attention maps
#
# `attention_maps(model, ids)` runs the model on one sequence with every attention layer
# recording (`attn.record = True`) and returns what they used: an array `(n_layer, n_head, T, T)`. Row `i` of a map is query `i`, column
# `j` key `j`; above the diagonal everything is 0 (the causal mask).

# %%
sample = x_test[0]
maps = attention_maps(copier, sample)
print(f"maps {maps.shape}; rows sum to 1: {np.allclose(maps.sum(-1), 1)}; "
      f"above the diagonal: {maps[..., np.triu_indices(2 * K, 1)[0], np.triu_indices(2 * K, 1)[1]].max()}")
plot_attention_maps(maps, show(sample), figure_path("16_attention_maps.png"),
                    title=f"the copier reading {''.join(show(sample))}")

# how much each head puts on the source position t - K, from the separator on, over 50 sequences
all_maps = np.stack([attention_maps(copier, x_test[i]) for i in range(50)])  # (50, L, H, T, T)
to_source = np.array([[np.mean([all_maps[:, layer, head, t, t - K].mean() for t in range(K, 2 * K)])
                       for head in range(2)] for layer in range(2)])  # (L, H)
print("attention on the source token, by layer (rows) and head (columns):\n", to_source.round(2))
assert to_source.max() > 0.5, "some head must look K positions back"

# %% [markdown]
# The picture shows an off-diagonal stripe `K` positions left of the diagonal in the
# second half: the head that fetches the token to copy. That the model *could* do it
# this way was a guess; that it does is what the map shows, for this input.
#
# ## The logit lens
#
# Apply the final LayerNorm and the output layer to the residual stream after each
# block. Row 0 reads the embeddings alone (at best a bigram guess); the last row is
# the model's own output, exactly. Each cell shows that layer's top guess, coloured
# by the probability the layer gives the token that *really* came next (colouring by
# the top guess's own probability would paint a confident wrong guess as dark as a
# right one). In the first half nothing can be predicted, so every row is pale there.

# %%
lens = logit_lens(copier, sample)  # (n_layer + 1, T, V + 1)
with tt.no_grad():
    own, _ = copier(sample[None], np.zeros((1, 2 * K), dtype=np.int64))
assert np.allclose(lens[-1], own.data[0], atol=1e-5), "the last layer of the lens is the model's output"
plot_logit_lens(lens, show(sample), SYMBOLS, figure_path("16_logit_lens.png"), title="the copier, layer by layer",
                next_ids=sample[1:])
lens_probs = np.exp(lens - lens.max(-1, keepdims=True))
lens_probs /= lens_probs.sum(-1, keepdims=True)  # (n_layer + 1, T, V)
p_true = lens_probs[:, np.arange(K, 2 * K - 1), sample[K + 1:]]  # (n_layer + 1, K - 1): the second half
print("mean p(true next token) in the second half, by row (embeddings, block 0, block 1):", p_true.mean(1).round(2))
assert p_true.mean(1)[0] < 0.3 < 0.9 < p_true.mean(1)[-1]
lens_accuracy = []
for layer in range(lens.shape[0]):
    guesses = np.stack([logit_lens(copier, x_test[i])[layer].argmax(-1) for i in range(50)])  # (50, T)
    lens_accuracy.append((guesses[:, K:] == y_test[:50, K:]).mean())
print("copy accuracy if the model stopped after: embeddings, block 0, block 1 =", np.round(lens_accuracy, 2))
assert lens_accuracy[0] < 0.3 < 0.9 < lens_accuracy[-1]

# %% [markdown]
# With the embeddings alone the model is near chance (1 in 10); after block 0, whose
# heads moved the source token over, the answer is already readable. So the copy
# happens in the first block, and the second adds little.
#
# ## Attributions: which tokens mattered?
#
# For the next-token prediction at position `t = K + 3`, attribute the predicted logit
# to the input tokens. The right answer is known: the source token at `t - K`.
#
# **Gradient x input**, `a_t = x_t . df/dx_t`, is the first-order Taylor term of the
# score in each token's embedding. **Integrated gradients** average the gradient along
# the straight path from a baseline (zeros) to the input; as an integral their scores
# add up to `f(x) - f(0)` exactly (completeness), and computed as a sum over a finite
# number of points on the path (16 or 32 here) they add up to it approximately. The
# error of that sum is printed below.

# %%
t = K + 3
hits = {"gradient_x_input": 0, "integrated_gradients": 0}
n_checked = steps(30, 12)
for i in range(n_checked):
    for method in hits:
        scores = token_attribution(copier, x_test[i, :t + 1], method=method, steps=16)["scores"]
        hits[method] += int(np.argmax(scores) == t - K)
for method, n in hits.items():
    print(f"{method:21s}: the source token scored highest in {n}/{n_checked} sequences")
assert hits["integrated_gradients"] >= 0.8 * n_checked
assert hits["integrated_gradients"] > hits["gradient_x_input"]

gxi = token_attribution(copier, x_test[0, :t + 1])["scores"]
ig_result = token_attribution(copier, x_test[0, :t + 1], method="integrated_gradients", steps=32)
ig = ig_result["scores"]
change = ig_result["score"] - ig_result["baseline_score"]  # f(x) - f(0)
print(f"completeness: the integrated gradients sum to {ig.sum():.4f}, f(x) - f(0) = {change:.4f} "
      f"(error {abs(ig.sum() - change):.1e}, from the 32-point sum)")
assert abs(ig.sum() - change) < 0.1 * abs(change)
fig, axes = plt.subplots(1, 2, figsize=(11, 3))
for ax, scores, name in [(axes[0], gxi, "gradient x input"), (axes[1], ig, "integrated gradients")]:
    ax.bar(range(t + 1), scores, color=np.where(scores >= 0, "tab:red", "tab:blue"))
    ax.set_xticks(range(t + 1), show(x_test[0, :t + 1]))
    ax.axvline(t - K, color="gray", ls=":")
    ax.set_title(f"{name} (dotted: the source token)")
fig.tight_layout()
fig.savefig(figure_path("16_attribution_copy.png"), dpi=110)

# %% [markdown]
# Gradient x input gets it wrong here. Not because of the output softmax: the score
# explained is the logit itself, which never passes through it. The reason is inside
# the model. Gradient x input is a slope: `a_t` is how fast the logit moves when token
# `t`'s embedding is scaled up a little, `d/de f(.., (1 + e) x_t, ..)` at `e = 0`. The
# copier's path from the source token to the logit runs through a LayerNorm, which
# divides each vector by its own scale (so scaling an embedding changes little once it
# dominates its position's vector), and through an attention softmax that is
# saturated on the source position (so its weights hardly move either). The slope at
# the input is then small, or of either sign, even for the token the prediction rests
# on. Integrated gradients walk from "no input" to the input and collect the change
# along the whole way, where these nonlinearities do respond. Neither is "the
# explanation"; they answer two different questions (the slope here; the total change
# from a baseline).
#
# ## Attribution for a classification
#
# A sentiment task in miniature, where we know which words matter: sentences of eight
# words drawn from positive words, negative words and filler; the label is positive
# when positive words outnumber negative ones. A one-layer GPT with a classification
# head (mean pooling) learns it in seconds.

# %%
POSITIVE = ["good", "great", "superb", "fine"]
NEGATIVE = ["bad", "awful", "dull", "poor"]
FILLER = ["the", "film", "was", "and", "a", "plot", "cast", "music"]
WORDS = POSITIVE + NEGATIVE + FILLER


def reviews(n, rng):
    ids = rng.integers(0, len(WORDS), (n * 2, 8))
    score = np.isin(ids, range(4)).sum(1) - np.isin(ids, range(4, 8)).sum(1)
    keep = score != 0  # no ties
    return ids[keep][:n], (score[keep][:n] > 0).astype(np.int64)


tt.manual_seed(0)
rng = np.random.default_rng(0)
classifier = SequenceClassifier(GPTConfig(vocab_size=len(WORDS), block_size=8, n_layer=1, n_head=2, n_embd=32),
                                num_classes=2, dropout=0.0)
optimizer = AdamW(classifier.param_groups(3e-3), lr=3e-3)
for _ in range(steps(400, 150)):
    ids, labels = reviews(32, rng)
    _, loss = classifier(ids, None, labels)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
test_ids, test_labels = reviews(400, np.random.default_rng(1))
test_accuracy = (classifier.predict_proba(test_ids).argmax(1) == test_labels).mean()
print(f"classifier accuracy: {test_accuracy:.1%}")
assert test_accuracy > 0.85

by_kind = {"positive": [], "negative": [], "filler": []}
for ids in test_ids[:steps(60, 25)]:
    scores = token_attribution(classifier, ids, target=1, method="integrated_gradients", steps=16)["scores"]
    for word_id, score in zip(ids, scores):
        kind = "positive" if word_id < 4 else "negative" if word_id < 8 else "filler"
        by_kind[kind].append(score)
means = {kind: float(np.mean(v)) for kind, v in by_kind.items()}
print("mean attribution to the positive class:", {k: round(v, 3) for k, v in means.items()})
assert means["positive"] > abs(means["filler"]) and means["negative"] < -abs(means["filler"])

example = test_ids[0]
p_positive = classifier.predict_proba(example[None])[0, 1]
review = token_attribution(classifier, example, target=1, method="integrated_gradients")
f_x, f_0 = review["score"], review["baseline_score"]
print(f"the positive logit: f(0) = {f_0:.2f} with every word embedding zeroed, f(x) = {f_x:.2f} for the review "
      f"(p = {p_positive:.2f}); the bars sum to {review['scores'].sum():.2f}, f(x) - f(0) = {f_x - f_0:.2f}")
plot_attribution(review["scores"], [WORDS[i] for i in example], figure_path("16_attribution_review.png"),
                 title=f"integrated gradients for the 'positive' logit (p = {p_positive:.2f})\n"
                       f"f(0) = {f_0:.2f} with no words, f(x) = {f_x:.2f} for this review\n"
                       f"the bars sum to about f(x) - f(0) = {f_x - f_0:.2f}")

# %% [markdown]
# Positive words push towards "positive", negative words away, filler hardly at all:
# the attributions recover the rule we built into the data. The bars explain the
# *change* from the baseline, not the prediction itself: with every word embedding at
# zero the model already gives the positive class a logit `f(0)` (from the position
# embeddings and the biases alone), and the words move it from there to `f(x)`. Bars
# that sum to a negative number beside a confident "positive" mean only that the
# words lowered the logit from a baseline that was higher still.
#
# ## What these pictures cannot tell
#
# Intervene instead of looking: silence the heads of block 0 (zero their share of
# `c_proj`, so they write nothing into the residual stream) and the copier should fall
# to chance, if those heads are what the maps say they are.

# %%
proj = copier.transformer["h"][0].attn.c_proj
saved = proj.weight.data.copy()
proj.weight.data[...] = 0
with tt.no_grad():
    ablated_logits, _ = copier(x_test, y_test)
proj.weight.data[...] = saved
ablated = (ablated_logits.data.argmax(-1)[scored] == y_test[scored]).mean()
print(f"copy accuracy with block 0's attention silenced: {ablated:.1%} (was {accuracy:.1%})")
assert ablated < 0.4

# %% [markdown]
# The ablation is a causal test; the three pictures are not:
#
# - an **attention map** says where a head reads, not what it reads (a value vector
#   may be near zero) nor whether the result is used later;
# - the **logit lens** reads every layer with the last layer's decoder; a layer that
#   holds the answer in another basis looks ignorant (the tuned lens learns one
#   decoder per layer for this reason);
# - **attributions** are local facts about one input and one baseline; they depend on
#   what counts as "the input" (here token embeddings, positions left out), and two
#   reasonable methods disagreed above.
#
# They work best as we used them: on a model whose mechanism we can check, or as a
# source of hypotheses that an intervention then tests. To draw the same three figures
# for your own checkpoint:
#
#     tinytransformer inspect --checkpoint runs/gpt --text "def f(x):" --out runs/gpt/inspect
#     tinytransformer inspect --checkpoint runs/sst2 --text "a great film" --what attribution
#
# ## What you can do now
#
# - Draw a model's attention maps, and read a head that looks a fixed distance back.
# - Read the logit lens, coloured by the probability of the true next token.
# - Attribute a prediction to its input tokens with gradient x input and integrated
#   gradients, and check integrated gradients' completeness against `f(x) - f(0)`.
# - Test what the pictures suggest by ablating the part they point at.
