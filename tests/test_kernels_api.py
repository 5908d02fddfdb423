"""The public names of ``kernels`` are the functions, and importing an op file never changes
that: each op file is named by its op, not by its function (``kernels/max_pool.py`` holds
``kernels.max_pool2d``), so ``import kernels.max_pool`` gives the module."""

import importlib
import inspect


def test_public_names_stay_functions_after_every_op_file_is_imported():
    from alexnet_fast import kernels

    modules = kernels.op_modules()
    assert {m.__name__ for m in modules} >= {"alexnet_fast.kernels.lrn", "alexnet_fast.kernels.max_pool", "alexnet_fast.kernels.lrn_max_pool"}
    for module in modules:
        importlib.import_module(module.__name__)
    for name in kernels.__all__:
        if name not in ("nn", "apply", "op_modules"):
            assert inspect.isfunction(getattr(kernels, name)), name
    assert callable(kernels.apply) and inspect.ismodule(kernels.nn)
    from alexnet_fast.kernels.nn import LocalResponseNorm, LRNMaxPool2d, MaxPool2d  # noqa: F401


def test_an_op_file_imported_by_its_dotted_name_is_the_module():
    import alexnet_fast.kernels.lrn_max_pool as fused
    import alexnet_fast.kernels.max_pool as pool

    assert inspect.ismodule(pool) and pool.max_pool2d is importlib.import_module("alexnet_fast.kernels").max_pool2d
    assert inspect.ismodule(fused) and fused.OP == "lrn_max_pool2d"
