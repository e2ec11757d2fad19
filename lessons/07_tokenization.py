# %% [markdown]
# # 07 Tokenization: characters, bytes and byte-pair encoding
#
# A language model reads integers, not text. A *tokenizer* fixes the alphabet of
# those integers and how text maps onto it, and that choice sets two numbers that
# pull against each other:
#
# - the **vocabulary size** `V`: the rows of the embedding table and the width of
#   the output softmax;
# - the **sequence length**: how many tokens a text becomes, and so how much text fits
#   in a context window of `T` tokens (attention costs grow with `T^2`).
#
# Characters give a tiny `V` and long sequences; whole words give short sequences, a
# huge `V`, and no way to spell a word never seen. Byte-pair encoding (BPE; Sennrich
# et al. 2016, byte-level as in GPT-2) sits in between, and you choose where.
#
# Our corpus is Python's own help pages (`help("assert")` and friends), which ship with
# every Python: `load_corpus()` needs no download.

# %%
import matplotlib.pyplot as plt
from course import SHORT, figure_path

from tinytransformer.data import BPETokenizer, CharTokenizer, load_corpus

corpus = load_corpus()                       # "pydoc", the default corpus
text = corpus[:120_000] if SHORT else corpus
split = int(0.9 * len(text))
train_text, heldout_text = text[:split], text[split:]
print(f"{len(corpus):,} characters in the corpus; training on {len(train_text):,}, measuring on {len(heldout_text):,}")
print(train_text[:300])

# %% [markdown]
# ## Characters
#
# The simplest tokenizer gives each distinct character an id (nanoGPT's Shakespeare
# model does this). Its weakness: a character the training text never showed has no id.

# %%
chars = CharTokenizer.from_text(train_text)
print(f"character vocabulary: {chars.vocab_size} symbols: {''.join(chars.chars[:100])!r}")
sample = 'assert x > 0, "x must be positive"'
print(sample, "->", chars.encode(sample))
assert chars.decode(chars.encode(sample)) == sample
try:
    chars.encode("naïve 🙂")
    raise AssertionError("an unseen character should have no id")
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# ## Bytes
#
# UTF-8 writes every Unicode character as 1 to 4 bytes, so an alphabet of the 256 byte
# values can spell *any* text: no unknown symbols, ever. The price is length: outside
# ASCII, one character becomes several tokens. `BPETokenizer()` with no merges learned
# is exactly this byte tokenizer.

# %%
raw = BPETokenizer()
for s in ["a", "é", "日", "🙂"]:
    print(f"{s!r}: {raw.encode(s)}")
assert raw.encode("🙂") == list("🙂".encode("utf-8")) and len(raw.encode("🙂")) == 4

# %% [markdown]
# ## Byte-pair encoding, one merge at a time
#
# Training repeats one step: find the most frequent pair of adjacent tokens and give
# it a new id. On the classic toy string `aaabdaaabac` (ids 97-100 are the bytes of
# `a b c d`): `aa` is most frequent, so it becomes 256; then `ab` becomes 257; then
# the pair (256, 257), i.e. `aaab`, becomes 258.

# %%
toy = "aaabdaaabac"
toy_tok = BPETokenizer.train(toy, vocab_size=259)
for k in range(len(toy_tok.merges) + 1):
    step = BPETokenizer(toy_tok.merges[:k])
    ids = step.encode(toy)
    print(f"after {k} merges: {ids}  =  {[step.vocab[i].decode() for i in ids]}")
assert toy_tok.encode(toy) == [258, ord("d"), 258, ord("a"), ord("c")]

# %% [markdown]
# Now the real corpus. Text is first cut into word-like chunks (a word with its
# leading space, a number, a run of punctuation, whitespace), and merges never cross
# a chunk boundary. Watch what the first merges join: runs of spaces (the help pages
# are indented code), then pieces of frequent English words, soon whole words like
# `" the"`, with their leading space. A word at the start of a line has no space before
# it, so it is a different, rarer chunk and often splits into more pieces.

# %%
max_vocab = 1024 if SHORT else 4096
bpe = BPETokenizer.train(train_text, vocab_size=max_vocab)
print(f"learned {len(bpe.merges)} merges; vocabulary {bpe.vocab_size}")
for k, (a, b) in enumerate(bpe.merges[:20]):
    print(f"  merge {k:2d}: {bpe.vocab[a]!r:>10} + {bpe.vocab[b]!r:<10} -> id {256 + k}: {bpe.vocab[256 + k]!r}")
longest = sorted(bpe.vocab[256:], key=len)[-8:]
print("longest tokens:", longest)

ids = bpe.encode(sample)
print(f"{sample!r} -> {len(ids)} tokens:", [bpe.vocab[i].decode("utf-8", errors="replace") for i in ids])
for s in [sample, heldout_text[:2000], "naïve 🙂 — e\u0301 日本", ""]:
    assert bpe.decode(bpe.encode(s)) == s  # exact round trip, whatever the text

# %% [markdown]
# ## Vocabulary size against sequence length
#
# Training to a smaller vocabulary gives a prefix of the same merges, so one training
# run gives every smaller tokenizer too: `BPETokenizer(bpe.merges[:k])`. Each merge can
# only join tokens, so sequences can only get shorter as the vocabulary grows. We
# measure tokens per character on the training text and on held-out text the merges
# never saw.

# %%
vocab_sizes = [v for v in (256, 288, 320, 384, 512, 768, 1024, 1536, 2048, 3072, 4096) if v <= bpe.vocab_size]
per_char = {"training text": [], "held-out text": []}
for v in vocab_sizes:
    tok = BPETokenizer(bpe.merges[:v - 256])
    for name, part in [("training text", train_text), ("held-out text", heldout_text)]:
        ids = tok.encode(part)
        assert tok.decode(ids) == part
        per_char[name].append(len(ids) / len(part))
    print(f"V = {v:5d}: {per_char['training text'][-1]:.3f} tokens/char (training), "
          f"{per_char['held-out text'][-1]:.3f} (held-out)")

fig, ax = plt.subplots(figsize=(6.5, 4))
for name, values in per_char.items():
    ax.plot(vocab_sizes, values, marker="o", label=f"byte-level BPE, {name}")
ax.scatter([chars.vocab_size], [1.0], color="k", zorder=3, label=f"characters (V = {chars.vocab_size})")
ax.set_xscale("log", base=2)
ax.set_xlabel("vocabulary size V")
ax.set_ylabel("tokens per character")
ax.set_title("A bigger vocabulary makes shorter sequences")
ax.legend()
fig.tight_layout()
fig.savefig(figure_path("07_tokens_per_char.png"), dpi=120)
plt.close(fig)

for values in per_char.values():
    assert all(b <= a for a, b in zip(values, values[1:])), "a merge can never lengthen a sequence"
assert per_char["held-out text"][-1] < 0.5 * per_char["held-out text"][0]
# merges fitted to the training text compress it at least as well as text they never saw
assert per_char["training text"][-1] <= per_char["held-out text"][-1]

# %% [markdown]
# With `V = 1024`, a block of 256 tokens holds about three times the text a
# character model sees in the same block, at the cost of an embedding table ten times
# taller whose rarer rows each get fewer training signals. GPT-2 chose `V = 50,257`
# for 40 GB of web text; for a megabyte, a few hundred to a few thousand is the useful range.

# %%
at_1024 = per_char["held-out text"][vocab_sizes.index(1024)]
print(f"a block of 256 tokens holds about {256 / at_1024:.0f} characters at V = 1024, 256 with characters")
assert 1 / at_1024 > 2.5

# %% [markdown]
# ## What you can do now
#
# - Tokenize text by characters, by bytes, and with a byte-level BPE you trained yourself.
# - Trace BPE's merges: count the adjacent pairs, merge the most frequent, repeat.
# - Trade the vocabulary size against the sequence length, and see why merges fitted
#   to one text compress it better than text they never saw.
#
# Exercises: `exercises/07_bpe.py`, checked with `tinytransformer exercises check 07`.
