"""alexnet_fast: AlexNet with Triton kernels, and the study around it.

``alexnet_fast.kernels`` (the folder kernels/) and ``alexnet_fast.profiling`` (profiling/) are
subpackages: installed through pyproject's package-dir, or, in a checkout run without an install
(``PYTHONPATH=. python3 -m alexnet_fast``, as on a GPU machine), found beside this folder. The
names below load on first use, so importing the kernels does not import the model.
"""

from pathlib import Path as _Path

_ROOT = _Path(__file__).resolve().parent.parent
if (_ROOT / "pyproject.toml").is_file() and (_ROOT / "kernels" / "__init__.py").is_file() \
        and str(_ROOT) not in __path__:
    __path__.append(str(_ROOT))  # a checkout: kernels/ and profiling/ sit beside alexnet_fast/

__all__ = ["AlexNet", "AlexNetConfig", "PRESETS", "alexnet", "make_config", "build_variant"]


def __getattr__(name):
    if name in ("AlexNet", "AlexNetConfig", "PRESETS", "alexnet", "make_config"):
        from alexnet_fast import model

        return getattr(model, name)
    if name == "build_variant":  # variants import the Triton kernels
        from alexnet_fast.variants import build_variant

        return build_variant
    raise AttributeError(f"module 'alexnet_fast' has no attribute {name!r}")
