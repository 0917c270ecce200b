"""England's official indicator statistics (OHID/PHE Fingertips methods).

Implemented from ``docs/stats-methods.md`` (our description of PHEindicatormethods
2.1.0) and checked against the package's own test cases in
``tests/conformance``. Pure functions: numbers in, numbers out, no I/O. NumPy and SciPy
are allowed here (quantile functions, the SII simulation); nothing else outside the
standard library.

One module per concept: ``confidence`` (levels, z), ``poisson`` (Byar/exact limits of a
count), ``proportion`` (Wilson), ``rate`` (crude rates), ``mean`` (Student's t), ``dsr``
(Dobson), ``isr`` (indirect standardisation), ``sii`` (slope and relative index of
inequality; with ``sii_scale``, ``sii_validation``, ``sii_fit`` and ``sii_counts``),
``gaps`` (difference and ratio between two groups), ``funnel`` (significance against a
benchmark) and ``funnel_limits`` (funnel-plot limit tables).
"""
