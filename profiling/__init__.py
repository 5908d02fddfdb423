"""Measurement: the bench and what it stands on, one job per module.

* :mod:`.bench` -- the ``alexnet-fast bench`` command line (flags, up-front refusals, run).
* :mod:`.plan` -- what a run measures (:class:`~profiling.plan.BenchPlan`), its default per
  device, and every check made before work starts.
* :mod:`.engine` -- one-device cells (whole model, per layer) and the results table.
* :mod:`.layout_bench` -- two-rank layout cells, on the same cell, judge and timer.
* :mod:`.cell` -- what a cell runs: inputs, eager references, checked outputs, timed steps.
* :mod:`.judge` -- tolerances and the one equivalence rule.
* :mod:`.timers` -- the one timer.
* :mod:`.flops`, :mod:`.roofline`, :mod:`.telemetry`, :mod:`.results`, :mod:`.report`,
  :mod:`.regress`, :mod:`.codegen` -- cost model, peaks, NVML, tables, reports, regression
  tracking and the code-generation check.

The precision policy and the vocabulary live in :mod:`alexnet_fast.precision` and
:mod:`alexnet_fast.vocabulary`.
"""
