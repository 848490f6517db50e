"""What one chapter measures and nothing else uses: ``recency`` (Chapter 1: how strongly
each input position influences C), ``long_range`` (Chapter 4: self-attention against a GRU
over distance, and the cost of each layer), and ``length``, the experiment Chapter 2 runs and
Chapter 5 closes (accuracy against length for four models under one budget; shared by the
two chapters, trained once per build).
"""
