"""Fewer autotune candidates for a short GPU run, and what the autotuner chose.

:func:`limit_autotune_configs` keeps the first ``n`` configs of every ``triton.autotune``
table (in the order ``kernels/configs.py`` lists them: a short run trades the later
candidates for time; the report records how many each autotuner had) by wrapping
``Autotuner.prune_configs`` -- the hook ``prune_configs_by`` feeds -- so it applies to the
autotuners the kernels create at import and to those they create lazily. Used as a pytest
plugin (``-p profiling.autotune_limit``) it reads ``ALEXNET_FAST_AUTOTUNE_MAX_CONFIGS``, so the
``pytest -m gpu`` run of the GPU suite prunes the same way.

:func:`chosen_configs` lists every autotuner's cache: kernel, key (the autotune key values
plus the tensor dtypes, as Triton builds it) and the chosen config.
"""

from __future__ import annotations

import contextlib
import gc
import os
import warnings
from typing import Any, Iterator

ENV_MAX_CONFIGS = "ALEXNET_FAST_AUTOTUNE_MAX_CONFIGS"


def _autotuner_class():
    from triton.runtime.autotuner import Autotuner

    return Autotuner


def install_limit(max_configs: int):
    """Patch ``Autotuner.prune_configs`` to keep at most ``max_configs`` candidates; returns
    the original method (for :func:`remove_limit`)."""
    if not (isinstance(max_configs, int) and max_configs >= 1):
        raise ValueError(f"max_configs must be a positive integer, got {max_configs!r}")
    cls = _autotuner_class()
    original = cls.prune_configs

    def prune_configs(self, kwargs, *args, **more):
        return original(self, kwargs, *args, **more)[:max_configs]

    prune_configs.__wrapped__ = original
    prune_configs.max_configs = max_configs
    cls.prune_configs = prune_configs
    return original


def remove_limit(original) -> None:
    _autotuner_class().prune_configs = original


@contextlib.contextmanager
def limit_autotune_configs(max_configs: int | None) -> Iterator[None]:
    """Within the block, every autotuner benchmarks at most ``max_configs`` configs (None:
    no limit)."""
    if max_configs is None:
        yield
        return
    original = install_limit(max_configs)
    try:
        yield
    finally:
        remove_limit(original)


def _config_dict(config) -> dict[str, Any]:
    if config is None:
        return {}
    kwargs = dict(getattr(config, "kwargs", {}) or {})
    for name in ("num_warps", "num_stages", "num_ctas"):
        value = getattr(config, name, None)
        if value is not None:
            kwargs[name] = value
    return kwargs


def _kernel_name(tuner) -> str:
    base = getattr(tuner, "base_fn", None) or getattr(tuner, "fn", None)
    while base is not None and not hasattr(base, "__name__") and hasattr(base, "fn"):
        base = base.fn
    return getattr(base, "__name__", type(tuner).__name__)


def _dtype_of(key: tuple) -> str | None:
    names = {"torch.float16": "fp16", "torch.bfloat16": "bf16", "torch.float32": "fp32"}
    for value in key:
        if str(value) in names:
            return names[str(value)]
    return None


def _is_instance(obj, cls) -> bool:
    try:
        return isinstance(obj, cls)
    except ReferenceError:  # a weakref.proxy whose object is gone
        return False


def chosen_configs(include_untuned: bool = False) -> list[dict[str, Any]]:
    """One row per (autotuner, key) in this process: kernel name, key, dtype of the first
    tensor argument, chosen config and the number of candidates (``tuned`` True).
    ``include_untuned``: also one row per autotuner with no choice yet (``tuned`` False,
    its first config): one that was never launched, or one with a single config, which
    Triton runs without tuning (the interpreter's)."""
    cls = _autotuner_class()
    rows = []
    with warnings.catch_warnings():  # isinstance on deprecated module proxies (torch.distributed.reduce_op) warns
        warnings.simplefilter("ignore")
        tuners = [o for o in gc.get_objects() if _is_instance(o, cls)]
    for tuner in tuners:
        cache = getattr(tuner, "cache", {}) or {}
        configs = getattr(tuner, "configs", []) or []
        if include_untuned and not cache:
            rows.append({"kernel": _kernel_name(tuner), "key_names": ",".join(getattr(tuner, "keys", []) or []),
                         "key": "-", "dtype": None, "config": _config_dict(configs[0] if configs else None),
                         "candidates": len(configs), "tuned": False,
                         "note": "one config: run without tuning" if len(configs) == 1 else "no choice yet"})
        for key, config in cache.items():
            key = tuple(key) if isinstance(key, (tuple, list)) else (key,)
            rows.append({"kernel": _kernel_name(tuner),
                         "key_names": ",".join(getattr(tuner, "keys", []) or []),
                         "key": "(" + ", ".join(map(str, key)) + ")",
                         "dtype": _dtype_of(key),
                         "config": _config_dict(config),
                         "candidates": len(configs), "tuned": True})
    return sorted(rows, key=lambda r: (r["kernel"], r["key"]))


# ------------------------------------------------------------------ pytest plugin
_PLUGIN_ORIGINAL = None


def pytest_configure(config) -> None:  # noqa: ARG001 (pytest hook signature)
    """``pytest -p profiling.autotune_limit``: apply ``ALEXNET_FAST_AUTOTUNE_MAX_CONFIGS``."""
    global _PLUGIN_ORIGINAL
    value = os.environ.get(ENV_MAX_CONFIGS)
    if not value:
        return
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"{ENV_MAX_CONFIGS} must be a positive integer, got {value!r}") from None
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        return  # the interpreter runs one config per kernel: nothing to prune
    _PLUGIN_ORIGINAL = install_limit(n)


def pytest_unconfigure(config) -> None:  # noqa: ARG001
    global _PLUGIN_ORIGINAL
    if _PLUGIN_ORIGINAL is not None:
        remove_limit(_PLUGIN_ORIGINAL)
        _PLUGIN_ORIGINAL = None
