"""Looking at trained models: what they attend to, predict on the way, and rely on; and the risks they carry.

    from tinytransformer.interpret import attention_maps, logit_lens, token_attribution
    maps = attention_maps(gpt, ids)            # (n_layer, n_head, T, T), each row sums to 1
    lens = logit_lens(gpt, ids)                # (n_layer + 1, T, V): every layer's guess of the next token
    token_attribution(classifier, ids)         # gradient x input on the token embeddings, one score per token

and the measurements of lessons 15-17: ``fit_power_law`` (scaling laws),
``memorization_rate`` (verbatim recall of training text), ``bias_probe``
(templated sentences that differ in one word). Figures: ``tinytransformer.plots``; all three
figures for a saved model: ``tinytransformer.tasks.inspection`` (``tinytransformer inspect``).
"""

from .attention_maps import attention_maps, head_attention
from .attribution import gradient_x_input, integrated_gradients, token_attribution
from .bias import bias_probe
from .logit_lens import logit_lens, residual_stream
from .memorization import memorization_rate, window_starts
from ..plots import plot_attention_maps, plot_attribution, plot_logit_lens, token_labels
from .scaling import PowerLaw, fit_power_law, non_embedding_parameters, training_flops

__all__ = [
    "PowerLaw", "attention_maps", "bias_probe", "fit_power_law", "gradient_x_input", "head_attention",
    "integrated_gradients", "logit_lens", "memorization_rate", "non_embedding_parameters", "plot_attention_maps",
    "plot_attribution", "plot_logit_lens", "residual_stream", "token_attribution", "token_labels", "training_flops",
    "window_starts",
]
