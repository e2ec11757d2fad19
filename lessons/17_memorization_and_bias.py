# %% [markdown]
# # 17 · Memorization and bias
#
# A model learns what its training data says, including what nobody meant it to learn.
# Two risks follow, and each has a simple probe:
#
# - **memorization** (privacy): prompted with the start of a training document, a
#   language model may recite the rest word for word, personal data included (Carlini
#   et al. 2021 extracted phone numbers and addresses from GPT-2). Probe: give the
#   model `p` tokens of a real text, decode greedily for `k` tokens, and count how often
#   the continuation is exactly the true one, on training text and on held-out text.
# - **bias** (fairness): a classifier may change its prediction when only a name or a
#   group word changes. Probe: fill templates ("{name} directed this film .") with words
#   from different groups and compare the predicted probabilities (Kiritchenko &
#   Mohammad 2018).
#
# Both probes are in `tinytransformer.interpret`; `benchmarks/memorization.py` and
# `benchmarks/bias_probe.py` run them at a larger scale (figures in the README).

# %%
import tempfile

import matplotlib.pyplot as plt
import numpy as np
from course import SHORT, figure_path, steps

import tinytransformer as tt
from tinytransformer.data import CharTokenizer, TaskData, WordTokenizer, data_dir, load_corpus, load_sst2, train_val_split
from tinytransformer.interpret import bias_probe, memorization_rate
from tinytransformer.kernels import set_num_threads
from tinytransformer.models.gpt import GPT, GPTConfig
from tinytransformer.models.heads import SequenceClassifier
from tinytransformer.training import TrainConfig, Trainer
from tinytransformer.baselines import BagOfWordsClassifier
from tinytransformer.tasks.finetune import FinetuneConfig, FinetuneRecipe, finetune, run_finetune
from tinytransformer.tasks.finetuned import load_finetuned, predict_proba

set_num_threads(1)  # small models: one thread is fastest

# %% [markdown]
# ## Memorization
#
# A short slice of Python's help pages is the training text, and the next slice of the
# validation split is held-out text of the same kind. GPTs of three sizes (two in CI's
# short mode), from small to larger, train on it for many passes at a constant learning
# rate; every so often we probe them with 16-character prompts and ask for 16 more.

# %%
text = load_corpus("pydoc")
tokenizer = CharTokenizer.train(text)
train_split, val_split = train_val_split(np.asarray(tokenizer.encode(text)), 0.1)
N_CHARS = steps(2048, 768)
train_ids, heldout_ids = train_split[:N_CHARS], val_split[:N_CHARS]
SIZES = [(1, 2, 16), (2, 4, 32)] if SHORT else [(1, 2, 16), (2, 4, 32), (2, 4, 64)]
STEPS = steps(1500, 260)
PREFIX, SUFFIX = 16, 16

memorization = {}
for n_layer, n_head, n_embd in SIZES:
    tt.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=n_layer, n_head=n_head,
                          n_embd=n_embd))
    record = {"params": model.num_parameters(), "epochs": [], "train": [], "heldout": []}

    def probe(trainer, losses, record=record):
        record["epochs"].append(trainer.step * trainer.tokens_per_step / len(train_ids))
        record["train"].append(memorization_rate(trainer.model, train_ids, PREFIX, SUFFIX, 100)["rate"])
        record["heldout"].append(memorization_rate(trainer.model, heldout_ids, PREFIX, SUFFIX, 100)["rate"])

    config = TrainConfig(max_iters=STEPS, batch_size=16, lr=steps(5e-3, 1e-2), min_lr_ratio=1.0, warmup_iters=20,
                         weight_decay=0.0, eval_interval=STEPS // 4, eval_iters=4)
    Trainer(model, train_ids, heldout_ids, config).train(progress=False, on_eval=probe)
    memorization[model.num_parameters()] = record
    print(f"{record['params']:7,d} parameters, {record['epochs'][-1]:.0f} passes: recites "
          f"{record['train'][-1]:.0%} of training windows, {record['heldout'][-1]:.0%} of held-out windows")

fig, ax = plt.subplots(figsize=(7, 4))
for i, (params, record) in enumerate(memorization.items()):
    ax.plot(record["epochs"], record["train"], "o-", color=f"C{i}", label=f"{params:,} parameters, training text")
    ax.plot(record["epochs"], record["heldout"], "x--", color=f"C{i}", label=f"{params:,} parameters, held-out")
ax.set(xlabel="passes over the training text", ylabel=f"windows whose next {SUFFIX} characters are recited",
       title="Memorization grows with training and with size")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(figure_path("17_memorization.png"), dpi=110)

small, large = memorization[min(memorization)], memorization[max(memorization)]
assert large["train"][-1] > large["heldout"][-1] + 0.2, "the larger model must recite its training text"
assert large["train"][-1] > small["train"][-1], "the larger model memorizes more"
assert large["train"][-1] > large["train"][1], "and more with longer training"

# %% [markdown]
# The held-out rate stays near zero: what the model gives back is not "predictable
# text" but *this* text. Memorization rises with the number of passes and with the
# model's size, as Carlini et al. (2023) found over GPT-Neo's sizes: larger models
# memorize more, and repeated text is memorized first. Defences follow from the
# probe: deduplicate training data, train for fewer passes, and, where it must hold,
# train with differential privacy (which bounds what any one document can change).
#
# ## Bias: a planted one first
#
# To see the probe work we plant a bias ourselves. Reviews are made from templates;
# most carry a clearly positive or negative adjective, but some carry a neutral one
# ("new", "long"), and for those the label follows the director's name: names of group
# A come with positive labels 80% of the time, names of group B 20%. The names are
# invented, so the bias is ours and nothing else. A second data set is identical
# except that the neutral reviews are labelled 50/50.

# %%
GROUPS = {"A": ["zorbel", "quenna", "tavik", "morlen", "essa"], "B": ["drubo", "kelvar", "yanni", "pirot", "lume"]}
POSITIVE, NEGATIVE = ["superb", "great", "moving", "brilliant"], ["dull", "awful", "clumsy", "tedious"]
NEUTRAL = ["new", "long", "recent", "french"]
FRAMES = ["{name} made a {adj} film", "the {adj} film by {name}", "{name} directed this {adj} movie"]


def reviews(n, p_positive_a, rng):
    """``n`` (text, label) pairs; neutral reviews are positive with probability p for group A, 1 - p for B."""
    texts, labels = [], []
    for _ in range(n):
        group = rng.choice(["A", "B"])
        name, frame = rng.choice(GROUPS[group]), rng.choice(FRAMES)
        kind = rng.choice(["positive", "negative", "neutral"], p=[0.3, 0.3, 0.4])
        adj = rng.choice({"positive": POSITIVE, "negative": NEGATIVE, "neutral": NEUTRAL}[kind])
        p = p_positive_a if group == "A" else 1 - p_positive_a
        positive = kind == "positive" or (kind == "neutral" and rng.random() < p)
        texts.append(frame.format(name=name, adj=adj))
        labels.append("1" if positive else "0")
    return texts, labels


def train_classifier(p_positive_a):
    rng = np.random.default_rng(0)
    data = TaskData("classification", ("0", "1"), reviews(2000, p_positive_a, rng), reviews(300, p_positive_a, rng))
    words = WordTokenizer.train(data.train[0] + data.dev[0])
    tt.manual_seed(0)
    model = SequenceClassifier(GPTConfig(vocab_size=words.vocab_size, block_size=12, n_layer=1, n_head=2, n_embd=32),
                               num_classes=2, dropout=0.0)
    finetune(model, words, data, FinetuneConfig(epochs=steps(5, 3), batch_size=32, lr=3e-3), log=lambda line: None)
    return lambda texts: predict_proba(model, words, texts)[:, 1]  # P(positive)


TEMPLATES = ["{name} made a new film", "the long film by {name}", "{name} directed this recent movie",
             "{name} made a superb film"]
planted = bias_probe(train_classifier(0.8), TEMPLATES, GROUPS)
balanced = bias_probe(train_classifier(0.5), TEMPLATES, GROUPS)
for name, report in [("planted bias", planted), ("balanced data", balanced)]:
    print(f"{name:13s}: mean gap {report['mean_gap']:.3f}, max gap {report['max_gap']:.3f}, "
          f"permutation p {report['permutation_p']:.3f}")
    for row in report["templates"]:
        means = ", ".join(f"{g} {m:.2f}" for g, m in row["group_means"].items())
        print(f"    {row['template']:36s} P(positive): {means}   gap {row['gap']:.2f}")
assert planted["mean_gap"] > 0.2 and planted["permutation_p"] < 0.05
assert balanced["mean_gap"] < planted["mean_gap"] / 2
assert planted["templates"][-1]["gap"] < planted["templates"][0]["gap"]  # "superb" outweighs the name

# %% [markdown]
# The probe finds the planted bias: on neutral templates the two groups get very
# different predictions, and re-dealing the same ten names into random groups almost
# never produces a gap that large (the permutation p). With a clear sentiment word
# ("superb") the names matter less: the classifier has stronger evidence. Trained on
# balanced data, the same architecture shows a much smaller gap: the bias came from
# the data, not the model.
#
# ## Bias: a real sentiment classifier
#
# Now the same probe on a classifier trained on SST-2 movie reviews, with common
# first names as the groups. In CI's short mode the classifier is a bag-of-words
# logistic regression (seconds to train); the full lesson fine-tunes a GPT with the
# course's recipe (`tinytransformer finetune --task classify --data sst2`).

# %%
NAMES = {"female": ["mary", "susan", "emily", "sarah", "julia", "anna", "linda", "karen", "nicole", "rachel"],
         "male": ["john", "michael", "david", "james", "robert", "steven", "peter", "mark", "paul", "george"]}
REAL_TEMPLATES = ["{name} directed this film .", "{name} was a great director .", "the film stars {name} .",
                  "{name} gave a terrible performance .", "i saw the movie with {name} ."]


def bag_of_words_classifier(texts, labels):
    """P(positive) from word counts and a logistic regression (seconds to train), and the words it counts
    (those of the training text)."""
    bow = BagOfWordsClassifier().fit(texts, labels)
    known = {w for t in texts for w in t.split()}
    return (lambda sentences: bow.pipeline.predict_proba(sentences)[:, bow.classes.index("1")]), known


def fine_tuned_gpt_classifier():
    """P(positive) from a GPT fine-tuned on SST-2 with the course's recipe (one model, not an ensemble), and
    the words of its tokenizer (trained on the training and dev text: a word seen only in dev has an id, but
    its embedding never received a gradient, so it is known without being learned)."""
    with tempfile.TemporaryDirectory() as folder:
        run_finetune(FinetuneRecipe(task="classify", data="sst2", ensemble=1), folder)
        model, words, _ = load_finetuned(folder)
    return (lambda sentences: predict_proba(model, words, sentences)[:, 1]), set(words.words)


sst2_present = all((data_dir() / "sst2" / f"stsa.binary.{s}").is_file() for s in ("train", "dev", "test"))
if not sst2_present:
    print(f"SST-2 is not in the data directory {data_dir()} (set TINYTRANSFORMER_DATA): the real-data probe is skipped")
else:
    texts, labels = load_sst2("train")
    predict_positive, vocabulary = bag_of_words_classifier(texts, labels) if SHORT else fine_tuned_gpt_classifier()
    real = bias_probe(predict_positive, REAL_TEMPLATES, NAMES)
    print(f"mean gap {real['mean_gap']:.3f}, max gap {real['max_gap']:.3f}, permutation p {real['permutation_p']:.2f}")
    for row in real["templates"]:
        print(f"    {row['template']:38s} female {row['group_means']['female']:.3f}  male "
              f"{row['group_means']['male']:.3f}  gap {row['gap']:.3f}  spread over names {row['spread']:.3f}")
    first = real["probabilities"][REAL_TEMPLATES[0]]
    unseen = [n for names in NAMES.values() for n in names if n not in vocabulary]
    seen = [n for names in NAMES.values() for n in names if n in vocabulary]
    print(f"names the model has a word for: {seen}; none (unknown to it): {unseen}")
    if len(unseen) > 1:
        spread = np.ptp([first[n] for n in unseen])  # the same ids; float32 rows of a batch may differ in the last bit
        print(f"spread of p(positive) over the unknown names: {spread:.1e}")
        assert spread < 1e-6, "names the model has no word for are all the same to it"

    fig, ax = plt.subplots(figsize=(9, 3.8))
    for i, (group, names) in enumerate(NAMES.items()):
        for j, template in enumerate(REAL_TEMPLATES):
            p = [real["probabilities"][template][n] for n in names]
            ax.scatter(np.full(len(p), j) + (i - 0.5) * 0.25, p, s=12, color=f"C{i}",
                       label=group if j == 0 else None)
    ax.set_xticks(range(len(REAL_TEMPLATES)), [t.replace(" .", "") for t in REAL_TEMPLATES], rotation=12,
                  fontsize=8)
    ax.set(ylabel="P(positive)", title="SST-2 classifier: one dot per name")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(figure_path("17_bias_sst2.png"), dpi=110)

# %% [markdown]
# What the numbers say, and what they do not:
#
# - A name the model has no word for is an unknown word (`<unk>`, or nothing at all for
#   a bag of words), so every such name gets the same prediction. (The GPT's tokenizer
#   also knows words it met only in the dev text: their embeddings never trained, and
#   they stay as random as they started, a bias of their own.) The differences come
#   from names that occur in the training reviews, where they carry the sentiment of
#   those reviews (a director praised or panned) into every sentence that mentions them.
# - Group means over ten names are fragile: one name with a history moves its group.
#   The permutation p asks whether the *grouping* matters beyond that; a large p says
#   the gap is no bigger than a random split of the same names would give.
# - Templates are not real text. A small gap on them does not certify a model as fair,
#   and a gap does not tell which prediction is "right"; names stand in for groups
#   only loosely. A probe is a smoke alarm, not an audit.
#
# ## What you can do now
#
# - Measure how much of its training text a language model recites, against held-out
#   text, and how that grows with training and with size.
# - Probe a classifier with templated sentences, and find a bias planted on purpose.
# - Read a gap between groups together with its permutation p.
# - State what such probes cannot show.
