"""TransferLens: which pretrained model (and which layer) transfers to your small dataset.

The library is organised as a one-directional pipeline (see docs/ARCHITECTURE.md)::

    data source -> model source -> layer taps -> FeatureSet (cached) -> metrics/probes -> records -> report
"""

__version__ = "0.1.0"
