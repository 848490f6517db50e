"""The models as torch modules: encoders, the two fixed-C decoders, the attention decoder,
self-attention layers and the Transformer encoder. The arithmetic is in
:mod:`attn_course.functional`; these modules hold parameters and call it.
"""
