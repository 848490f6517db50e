"""attn_course: the code behind the book "Attention, from one context vector to self-attention".

Ordinary modules, one idea each; chapters import them instead of copying code:

- ``attn_course.softmax``: ``softmax``, ``masked_softmax``
- ``attn_course.scores``: ``dot_score``, ``scaled_dot_score``, ``cosine_score``, ``additive_score``
- ``attn_course.attention``: ``attention``, ``hard_weights``, ``hard_attention``
- ``attn_course.checks``: the checks the graded notebooks' test cells use

Import from the module that defines a name, e.g.
``from attn_course.attention import attention``. (The package does not re-export
them: a function named like its module would hide the module.)

The attention primitives accept NumPy arrays or torch tensors and return the
same kind (one code path, through the array-API namespace of the input).
Importing them does not import torch.
"""

__version__ = "0.1.0"
