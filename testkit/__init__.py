"""What the tests and the bench scripts share, one copy each: the tiny run config, synthetic concept scores,
small data sets in the layouts users bring, a real dashboard server and chromium, racing processes.

Installed with the project (``pip install -e .``), so tests and benches import it as ``testkit`` without
touching ``sys.path``. Not part of the engine: nothing in ``igcore`` or ``dashboard`` imports it.
"""
