"""attn_course: the code behind the book "Attention, from one context vector to self-attention".

Ordinary modules, one idea each; chapters import them instead of copying code.

- :mod:`attn_course.softmax`: stable and masked softmax
- :mod:`attn_course.scores`: dot, scaled dot, cosine and additive (MLP) scores
- :mod:`attn_course.attention`: ``attention`` and ``hard_attention``

Every function here accepts NumPy arrays or torch tensors and returns the same
kind it was given (one code path, through the array-API namespace of the
input). Importing the package does not import torch.
"""

from attn_course.attention import attention, hard_attention, hard_weights
from attn_course.scores import (
    additive_score,
    cosine_score,
    dot_score,
    init_additive_params,
    scaled_dot_score,
)
from attn_course.softmax import masked_softmax, softmax

__all__ = [
    "additive_score",
    "attention",
    "cosine_score",
    "dot_score",
    "hard_attention",
    "hard_weights",
    "init_additive_params",
    "masked_softmax",
    "scaled_dot_score",
    "softmax",
]
__version__ = "0.1.0"
