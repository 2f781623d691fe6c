"""IG Microscope engine: Imitative Generalization ("learning the prior") and a baseline microscope.

Public entry points: :func:`igcore.config.load_config`, :func:`igcore.pipeline.run_pipeline`,
:class:`igcore.store.RunStore`; see README.md and DESIGN.md for the architecture.
"""

__version__ = "0.1.0"
