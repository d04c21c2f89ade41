"""Names the command line offers and the library checks, declared once (torch-free)."""

DEVICES = ("auto", "cpu", "cuda", "mps")
BACKENDS = ("engine", "snntorch")
PRECISIONS = ("auto", "fp32", "bf16")
