"""How to train: the one training loop (``Trainer``, ``TrainConfig``), checkpoints that resume exactly,
and the progress bar. What to train (a language model, a fine-tuned head, a translator) is
``tinytransformer.tasks``.

    from tinytransformer.training import TrainConfig, Trainer
    Trainer(model, train_ids, val_ids, TrainConfig(max_iters=200)).train()
"""

from .checkpoint import check_out_folder, load_checkpoint, load_meta, save_checkpoint
from .progress import Progress
from .trainer import TrainConfig, Trainer, default_loss

__all__ = ["Progress", "TrainConfig", "Trainer", "check_out_folder", "default_loss", "load_checkpoint", "load_meta",
           "save_checkpoint"]
