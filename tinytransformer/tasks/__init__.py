"""What to train: one module per task, each a config dataclass (the only home of its defaults) and a
function the command line and Python both call with it.

    language_model   ``tinytransformer train``/``generate``/``demo``: pretraining a GPT, RNN or LSTM on a corpus
    finetune         ``tinytransformer finetune``: a classification or tagging head on a GPT body
    finetuned        ``classify``/``tag``: a fine-tuned model's predictions, scores, save and load
    tagging          ``finetune --task tag``'s default: the BiLSTM-CRF tagger over words, characters and shapes
    translation      ``tinytransformer translate``: the encoder-decoder that writes numbers in words
    inspection       ``tinytransformer inspect``: attention maps, logit lens and attributions of a checkpoint
    exercises        ``tinytransformer exercises check NN``: the checks of a lesson's exercises on the learner's file

How each is trained is ``tinytransformer.training``'s one loop.
"""
