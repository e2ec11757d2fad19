"""Training: the loop (``Trainer``), checkpoints that resume exactly, progress, loss plots,
and the pretraining recipe the command line uses.

    from tinytransformer.training import TrainConfig, prepare_pretraining
    trainer = prepare_pretraining("pydoc", model_config={"n_layer": 2}, train_config=TrainConfig(max_iters=200))
    trainer.train()
"""

from .checkpoint import load_checkpoint, load_meta, save_checkpoint
from .plots import plot_loss_curves
from .pretrain import TOKENIZERS, load_pretrained, prepare_pretraining, resume_pretraining, train_tokenizer
from .progress import Progress
from .trainer import TrainConfig, Trainer

__all__ = [
    "Progress", "TOKENIZERS", "TrainConfig", "Trainer", "load_checkpoint", "load_meta", "load_pretrained",
    "plot_loss_curves", "prepare_pretraining", "resume_pretraining", "save_checkpoint", "train_tokenizer",
]
