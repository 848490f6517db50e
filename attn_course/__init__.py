"""attn_course: the code behind the book "Attention, from one context vector to self-attention".

Ordinary modules, one idea each; chapters import them instead of copying code:

- ``attn_course.softmax``: ``softmax``, ``masked_softmax``
- ``attn_course.scores``: ``dot_score``, ``scaled_dot_score``, ``cosine_score``, ``additive_score``
- ``attn_course.attention``: ``attention``, ``hard_weights``, ``hard_attention``
- ``attn_course.data``: toy sequence tasks generated in code, padded batches
- ``attn_course.rnn``, ``attn_course.seq2seq``: encoders, the Cho and Sutskever decoders (torch)
- ``attn_course.attention_decoder``: the Bahdanau-style attention decoder (torch)
- ``attn_course.self_attention`` (NumPy or torch), ``attn_course.self_attention_torch``
  (modules): self-attention, multi-head, masks, positional encodings
- ``attn_course.long_range``: Chapter 4's long-range task and cost measurements
- ``attn_course.train``: the training loop the chapters share
- ``attn_course.plotting``: heatmaps and curves
- ``attn_course.rnn_numpy``, ``attn_course.attention_numpy``: NumPy references of the graded
  functions of assignments 1 and 2
- ``attn_course.checks``: the checks the graded notebooks' test cells use
- ``attn_course.grading``, ``attn_course.cli``: ``attn-course grade`` and ``attn-course check``
- ``attn_course.release``: regenerate ``exercises/`` from ``solutions/``

Import from the module that defines a name, e.g.
``from attn_course.attention import attention``. (The package does not re-export
them: a function named like its module would hide the module.)

The attention primitives accept NumPy arrays or torch tensors and return the
same kind (one code path, through the array-API namespace of the input).
Importing them does not import torch.
"""

__version__ = "0.1.0"
