"""Two-device layouts of AlexNet on torch.distributed: ``single``, ``data_parallel``
(DistributedDataParallel) and ``model_parallel`` (the paper's two-column split).

* :mod:`.columns`: the column model, its exchanges with autograd, and weight split/merge.
* :mod:`.comm`: joining the process group (NCCL on GPUs, gloo on CPU) and metering
  collectives (time and bytes).
* :mod:`.layout`: applying a layout to a model on a rank (what training uses), moving
  state_dicts between layouts, and the communication byte model.

What is placed here is measured elsewhere: a layout cell (equivalence, timing, bytes) is
:mod:`profiling.layout_bench`, with the engine's cell, judge and timer. Precision is
:mod:`alexnet_fast.precision`. Ranks start with ``torchrun`` or
:func:`alexnet_fast.launch.launch`.
"""

from alexnet_fast.layouts.columns import ColumnAlexNet, merge_columns, split_columns
from alexnet_fast.layouts.exchange import ColumnComm
from alexnet_fast.layouts.comm import (
    DEFAULT_TIMEOUT_S, CommMeter, DistContext, choose_device, init_ranks, local_context, shutdown,
)
from alexnet_fast.layouts.layout import (
    LAYOUTS, check_layout, comm_bytes_model, full_grads, full_optimizer_state_dict, full_state_dict,
    gather_from_ranks, layout_model, load_full_optimizer_state_dict, load_full_state_dict, local_batch,
)

__all__ = [
    "LAYOUTS",
    "ColumnAlexNet", "ColumnComm", "split_columns", "merge_columns",
    "DEFAULT_TIMEOUT_S", "CommMeter", "DistContext", "choose_device", "init_ranks", "local_context",
    "shutdown", "check_layout", "comm_bytes_model", "full_grads", "full_state_dict",
    "gather_from_ranks", "layout_model", "load_full_state_dict", "local_batch",
    "full_optimizer_state_dict", "load_full_optimizer_state_dict",
]
