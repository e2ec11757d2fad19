"""Generation: turning a trained model's next-token scores into text.

    sampling.py   a language model (GPT, RNN): greedy, temperature, top-k, top-p; the KV cache
                  that makes each new token cost one position
                      generate(gpt, prompt_ids, max_new_tokens=200, temperature=0.8, top_k=40)
    decoding.py   an encoder-decoder: greedy decoding and beam search over whole sequences
                      beam_search(model_step(model, src), len(src), bos_id, eos_id, max_len, beam_size=4)
"""

from .decoding import beam_search, greedy_decode, model_step
from .sampling import generate, sample_next_token, top_k_filter, top_p_filter

__all__ = ["beam_search", "generate", "greedy_decode", "model_step", "sample_next_token", "top_k_filter", "top_p_filter"]
