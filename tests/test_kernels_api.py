"""The public names of ``kernels`` are the functions, even after their files are imported."""

import importlib
import inspect


def test_public_names_stay_functions():
    import kernels

    for name in kernels.__all__:
        if name == "nn":
            continue
        importlib.import_module(f"kernels.{'lrn' if name == 'local_response_norm' else name}")
        assert inspect.isfunction(getattr(kernels, name)), name
    from kernels.nn import LocalResponseNorm, LRNMaxPool2d, MaxPool2d  # noqa: F401
