"""The equations as functions: NumPy arrays or torch tensors in, the same kind out.

One module per idea: ``softmax``, ``scores``, ``attention``, ``self_attention``, ``heads``,
``masks``, ``positions``, ``transformer``. Shape checks live in ``_arrays``. Importing this
package does not import torch.
"""
