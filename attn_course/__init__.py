"""attn_course: the code behind the book "Attention, from one context vector to self-attention".

The folders draw the architecture, as in torch (``torch.nn.functional`` for functions,
``torch.nn`` for modules). Every idea of the book lives in one module, named for it:

``attn_course.functional``: the equations, as functions of NumPy arrays or torch tensors
    (one code path through the array API; importing them does not import torch)

    - ``softmax``: ``softmax``, ``masked_softmax``
    - ``scores``: ``dot_score``, ``scaled_dot_score``, ``cosine_score``, ``additive_score``
    - ``attention``: ``attention``, ``hard_weights``, ``hard_attention``
    - ``self_attention``: ``self_attention``, ``projected_self_attention``,
      ``permutation_equivariance_error``
    - ``heads``: ``split_heads``, ``merge_heads``, ``multi_head_attention``
    - ``masks``: ``causal_mask``, ``padding_mask``
    - ``positions``: ``sinusoidal_positional_encoding``
    - ``transformer``: ``layer_norm``, ``feed_forward``, ``residual``, ``encoder_layer``,
      ``decoder_layer``

``attn_course.nn``: the models, as torch modules with parameters (they call ``functional``)

    - ``encoders``: the RNN/LSTM/GRU encoder, h_1..h_n and C
    - ``decoders``: the two fixed-C decoders (Cho, Sutskever), ``Seq2Seq``, greedy decoding
    - ``attention_decoder``: the Bahdanau-style attention decoder and its scores
    - ``self_attention``: ``SelfAttention``, ``MultiHeadAttention``, ``PositionalEncoding``
    - ``transformer``: the encoder and decoder layers, the self-attention encoder, and the
      Transformer's encoder and decoder with the interface of ``decoders``

``attn_course.answers``: the NumPy answer keys of the assignments whose functions are not
    in ``functional`` (``encoder_decoder`` for assignment 01, ``attention`` for 02)

``attn_course.experiments``: what one chapter measures (``recency`` for Chapter 1,
    ``long_range`` for Chapter 4; ``length``, the length experiment of Chapters 2 and 5)

``attn_course.data`` (toy tasks, padded batches), ``attn_course.train`` (the training loop
    and accuracies), ``attn_course.plotting`` (heatmaps and curves, the book's palette)

``attn_course.diagrams``: pictures of the models, one function each, drawn at the sizes of
    a chapter's example with alt text written from the same sizes; ``figure`` shows one

``attn_course.drawing``: the toolkit the pictures are drawn with (``Diagram``: boxes,
    vectors, arrows in matplotlib, measured in inches; the colours of each role)

``attn_course.checks``: what the assignments' test cells import (a student's kernel
    imports this and NumPy, nothing of the grader)

``attn_course.grading``: the instructor's side, a separate concern with its own
    dependencies (the ``grading`` extra): ``attn-course grade`` and ``check``, the nbgrader
    plugin, the release tool that regenerates ``exercises/``

Import from the module that defines a name, e.g.
``from attn_course.functional.attention import attention``. (The package does not re-export
them: a function named like its module would hide the module.)
"""

__version__ = "0.1.0"
