"""Every report the study writes, as sections that share one formatter (:mod:`.format`):
bench runs (:mod:`.bench`: REPORT.md, roofline and throughput plots), GPU suite runs
(:mod:`.suite`), the profile's tables (:mod:`.profile`) and regression checks
(:mod:`.regress`). Pure rendering of results already measured: no device, no timing."""
