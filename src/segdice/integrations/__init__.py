"""Adapters to other training frameworks, each in its own module and imported only on request.

- :mod:`segdice.integrations.torchmetrics`: ``SegDiceMetric``, a ``torchmetrics.Metric`` (needs
  torchmetrics, which segdice itself never requires).

This package imports nothing by itself, so ``import segdice`` never loads a framework.
"""

__all__: list[str] = []
