"""``tinytransformer.nn.utils.clip_grad_norm_``: where PyTorch users look for gradient clipping.

It lives with the optimizers, in ``tinytransformer/optim/clip.py``; this module
only gives it PyTorch's second address.
"""

from ..optim.clip import clip_grad_norm_

__all__ = ["clip_grad_norm_"]
