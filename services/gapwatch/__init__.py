"""gapwatch: near-real-time health-inequalities monitoring for NHS integrated care systems."""

__version__ = "0.1.0"
__all__ = ["__version__"]
