"""Triton kernels for AlexNet: fused conv + ReLU, LRN, overlapping max-pool, LRN + pool.

Each op lives in one file with its kernels, launchers and autograd; ``kernels.nn`` has the
nn.Module wrappers. Tensors must be CUDA tensors, or CPU tensors under TRITON_INTERPRET=1.
"""
