"""Benchmarks: each script measures one thing on the current code and writes its report under docs/.

Run one from the repository root as ``python -m bench.<script>`` (e.g. ``python -m bench.bench_search``);
:mod:`bench.common` names the command, machine and packages in every report.
"""
