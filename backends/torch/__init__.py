"""The PyTorch backend: ``adapter`` (the Backend protocol), ``models`` (torch.nn builders from the
workload specs) and ``devices`` (pure device and precision rules).

Importing this package does not import torch; only ``adapter`` and ``models`` do.
"""
