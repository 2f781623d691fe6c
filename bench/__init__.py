"""Benchmarks: each script measures one thing on the current code and writes generated blocks of the docs.

Every script is declared once in :data:`bench.registry.GENERATORS` (its documented and quick settings, what it
writes), writes through :class:`bench.common.Report` (which adds the provenance: command, commit, machine,
threads, date) and is run by ``python -m bench.regenerate`` or on its own as ``python -m bench.<script>``.
:mod:`bench.docs` reads the pages back: blocks, their structure, and numbers outside them.
"""
