"""alexnet_fast: AlexNet with Triton kernels, and the study around it."""

from alexnet_fast.model import AlexNet, AlexNetConfig, PRESETS, alexnet, make_config

__all__ = ["AlexNet", "AlexNetConfig", "PRESETS", "alexnet", "make_config", "build_variant"]


def __getattr__(name):  # lazy: variants import the Triton kernels
    if name == "build_variant":
        from alexnet_fast.variants import build_variant

        return build_variant
    raise AttributeError(f"module 'alexnet_fast' has no attribute {name!r}")
