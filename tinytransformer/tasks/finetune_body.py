"""Where a fine-tuned head's body comes from: a pretrained checkpoint, pretraining on the task's text, or nothing.

    state, config, tokenizer = prepare_body(recipe, data, out_dir)    what ``finetune`` starts each head from

Four ways, in this order (``prepare_body``):

    --checkpoint DIR   a pretrained GPT (``train``, or OUT/pretrained of an earlier ``finetune``) or
                       BERT encoder (``train --model bert``): its weights, its size and its tokenizer,
                       which replaces the task's own (body and head must read text the same way)
    --pretrained PATH  a GPT-2 in Hugging Face's layout (a folder or a hub name, ``models/hf_gpt2.py``),
                       with GPT-2's own tokenizer (vocab.json, merges.txt)
    --pretrain-steps N a GPT pretrained here by next-token prediction on the task's training and dev
                       text (``pretrain_for_task``), saved to OUT/pretrained for reuse with --checkpoint
    neither            a fresh GPT, trained from scratch with the head

The config returned says the body's kind (a ``GPTConfig`` or a ``BertConfig``,
``models.heads.BODIES``), so the same recipe fine-tunes either. ``head_on_body`` then
builds each head on that body, with LoRA adapters in it if the recipe asks (``--lora``).
"""

from pathlib import Path

import numpy as np

from ..data.batching import EpochBatches, pad
from ..data.encoding import encode_words, pretraining_sentences, task_tokenizer
from ..models.gpt import GPT, GPTConfig
from ..models.heads import body_type, build_body
from ..models.hf_gpt2 import load_model_and_tokenizer
from ..nn import functional as F
from ..nn import skip_init
from ..rng import manual_seed
from ..training import TrainConfig, Trainer
from .finetuned import build_head
from .language_model import PRETRAINED_BODIES, load_pretrained, save_pretrained_body

MAX_BLOCK_SIZE = 128


def _texts(split):
    return [t if isinstance(t, str) else " ".join(t) for t in split[0]]


def _block_size(task, tokenizer, data):
    """Room for the longest training or dev sentence (plus <bos>), at most MAX_BLOCK_SIZE."""
    inputs = data.train[0] + data.dev[0]
    if task == "classify":
        longest = max(len(tokenizer.encode(t)) for t in inputs)
    else:
        longest = max(len(encode_words(tokenizer, words)[0]) for words in inputs)
    return min(longest + 2, MAX_BLOCK_SIZE)


def load_body(folder, dropout, log=print):
    """``(state_dict, config, tokenizer)`` of the pretrained GPT or BERT in ``folder``, the config's dropout
    replaced by ``dropout`` (fine-tuning's own)."""
    body, tokenizer, _ = load_pretrained(folder, reader="finetune --checkpoint", holds=PRETRAINED_BODIES)
    config = type(body.config)(**{**body.config.to_dict(), "dropout": dropout})
    log(f"body: {folder} ({body_type(config).upper()}, {config.n_layer} layers, width {config.n_embd}, "
        f"vocabulary {tokenizer.vocab_size})")
    return body.state_dict(), config, tokenizer


def load_gpt2_body(name_or_path, dropout, log=print):
    """``(state_dict, config, tokenizer)`` of the GPT-2 in a Hugging Face folder or hub name, the config's dropout
    replaced by ``dropout``; the tokenizer is GPT-2's own."""
    body, tokenizer = load_model_and_tokenizer(name_or_path)
    if tokenizer.vocab_size != body.config.vocab_size:  # a fine-tuned model's checkpoint records one size
        raise ValueError(f"--pretrained {name_or_path}: vocab.json has {tokenizer.vocab_size} tokens but config.json's "
                         f"vocab_size is {body.config.vocab_size}; fine-tuning needs the two to agree")
    config = GPTConfig(**{**body.config.to_dict(), "dropout": dropout})
    log(f"body: GPT-2 from {name_or_path} ({config.n_layer} layers, width {config.n_embd}, "
        f"{body.num_parameters():,} parameters, vocabulary {tokenizer.vocab_size})")
    return body.state_dict(), config, tokenizer


def prepare_body(recipe, data, out_dir, log=print):
    """``(state_dict or None, config, tokenizer)``: the body the heads start from (module docstring)."""
    if recipe.checkpoint is not None:
        return load_body(recipe.checkpoint, recipe.dropout, log)
    if recipe.pretrained is not None:
        return load_gpt2_body(recipe.pretrained, recipe.dropout, log)
    texts = _texts(data.train) + _texts(data.dev)
    tokenizer = task_tokenizer(texts, recipe.tokenizer, recipe.vocab_size, recipe.min_freq)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=_block_size(recipe.task, tokenizer, data),
                       n_layer=recipe.n_layer, n_head=recipe.n_head, n_embd=recipe.n_embd, dropout=recipe.dropout)
    log(f"tokenizer: {recipe.tokenizer}, {tokenizer.vocab_size} ids, trained on the training and dev texts")
    if not recipe.pretrain_steps:
        log("body: from scratch (no pretraining)")
        return None, config, tokenizer
    sentences = pretraining_sentences(texts, tokenizer, config.block_size, recipe.pretrain_corpus)
    log(f"pretraining a {config.n_layer}-layer GPT (width {config.n_embd}) for {recipe.pretrain_steps} steps on "
        f"{len(sentences):,} sentences ({sum(map(len, sentences)):,} tokens)")
    shortlist = recipe.shortlist if recipe.tokenizer == "word" else None
    body = pretrain_for_task(sentences, GPTConfig(**{**config.to_dict(), "dropout": 0.0}), recipe.pretrain_steps,
                             batch_size=recipe.batch_size, seed=recipe.seed, shortlist=shortlist,
                             unk_id=getattr(tokenizer, "unk_id", None), log=log)
    if out_dir is not None:
        save_pretrained_body(Path(out_dir) / "pretrained", body, tokenizer, "task text", recipe.overwrite)
    return body.state_dict(), config, tokenizer


def head_on_body(recipe, config, state, labels, log=None):
    """A fresh head for ``recipe.task`` and ``labels`` on the body: ``state`` loaded into it (None: a fresh body),
    then, with ``recipe.lora``, adapters of that rank on its attention and MLP projections, the rest frozen.

    A GPT-2's body is built without drawing its random initial weights (``nn.skip_init``), which the
    loaded ones replace: seconds for GPT-2 small. (A body from ``--checkpoint`` is built as it always was,
    drawn, so a seeded run keeps the head it had.)
    """
    body = None
    if state is not None and recipe.pretrained is not None:
        with skip_init():
            body = build_body(config)
        body.load_state_dict(state)
    model = build_head(recipe.task, config, labels, recipe.head_dropout, recipe.pooling, body=body)
    if state is not None and body is None:
        model.load_body(state)
    if recipe.lora is not None:
        if body_type(config) != "gpt":
            raise ValueError(f"--lora: adapters go on a GPT body's attention and MLP projections; "
                             f"{recipe.checkpoint} holds a {body_type(config).upper()}: fine-tune it without --lora")
        if recipe.lora > config.n_embd:
            raise ValueError(f"--lora {recipe.lora} is more than the body's width {config.n_embd}: a change of that "
                             "rank to its projections is not low-rank; choose a smaller rank, or fine-tune without --lora")
        model.add_lora(recipe.lora, recipe.lora_alpha)
        if log is not None:
            trained, frozen = (sum(p.size for p in model.parameters() if p.requires_grad == on) for on in (True, False))
            scale = (recipe.lora_alpha or recipe.lora) / recipe.lora
            log(f"LoRA: rank {recipe.lora} adapters (scale {scale:g}) on {4 * config.n_layer} projections of the body; "
                f"{trained:,} parameters train (the head's included), {frozen:,} stay frozen")
    return model


# ------------------------------------------------- pretraining for the task
def pretrain_for_task(sentences, model_config: GPTConfig, steps, batch_size=32, lr=2e-3, seed=0, shortlist=None,
                      unk_id=None, log=print) -> GPT:
    """A GPT pretrained by next-token prediction on ``sentences`` (lists of token ids), one per row.

    Each batch holds sentences of similar lengths, each starting at position 0
    as the fine-tuned model will see them; padded targets are -1 (ignored).
    AdamW (decay 0.1 on matrices), warmup over 5% of the steps, then cosine to lr/10.
    Logs the mean loss of the last 50 steps ten times.

    ``shortlist`` N (with ``unk_id``) predicts only the N first ids, the most
    frequent words of a ``WordTokenizer``, and counts every rarer target as
    ``unk_id`` (the short-list of Schwenk 2007). The softmax over a 16k-word
    vocabulary costs three times the rest of a small model; a 2k short-list
    still covers most running words, and rare words still train as inputs.
    """
    if shortlist is not None and unk_id is None:
        raise ValueError("pretrain_for_task: a shortlist needs unk_id, the id that stands for every rarer word")
    manual_seed(seed)
    model = GPT(model_config)
    n_out = model_config.vocab_size if shortlist is None else min(shortlist, model_config.vocab_size)

    def shortlist_loss(model, batch):
        seqs, mask = batch  # (B, T), (B, T) True at padding
        targets = seqs[:, 1:] if shortlist is None else np.where(seqs[:, 1:] >= n_out, unk_id, seqs[:, 1:])
        targets = np.where(mask[:, 1:], -1, targets)  # (B, T - 1): the next token, -1 at padding (ignored)
        h = model.hidden_states(seqs[:, :-1])  # (B, T - 1, C)
        logits = F.linear(h, model.lm_head.weight[:n_out])  # (B, T - 1, n_out), tied to the embedding
        return F.cross_entropy(logits.reshape(-1, n_out), targets.reshape(-1), ignore_index=-1)

    def log_loss(trainer):
        loss = np.mean(trainer.history["train_loss"][-50:])
        log(f"pretrain step {trainer.step}/{steps}: loss {loss:.4f}")
        return {"loss": float(loss)}

    batches = EpochBatches([len(s) for s in sentences], batch_size, lambda batch: pad([sentences[i] for i in batch]),
                           from_end=True)
    loop = TrainConfig(max_iters=steps, batch_size=batch_size, lr=lr, betas=(0.9, 0.99), weight_decay=0.1,
                       warmup_iters=max(1, steps // 20), min_lr_ratio=0.1, grad_clip=1.0,
                       eval_interval=max(1, steps // 10), seed=seed)
    Trainer(model, batches, config=loop, loss_fn=shortlist_loss, evaluate=log_loss,
            evaluate_first=False).train(progress=False)
    model.eval()
    return model
