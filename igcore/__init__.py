"""IG Microscope engine: Imitative Generalization ("learning the prior") and a baseline microscope.

Public entry points: :func:`igcore.config.load_config`, :func:`igcore.pipeline.run_pipeline`,
:class:`igcore.store.RunStore`; docs/ARCHITECTURE.md describes the data flow and the contracts.
"""

import os

# Intel MKL (torch's CPU BLAS) chooses code paths by memory alignment unless told otherwise, so two
# processes running the same seed could differ in the last bits of a matrix product and, through
# training, in a model's answers. Strict conditional numerical reproducibility removes that; it must
# be set before MKL's first call, which importing igcore precedes.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

__version__ = "0.1.0"
