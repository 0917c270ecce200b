"""The pure domain core: no I/O, no clock, only the standard library.

Time arrives as int epoch milliseconds passed in by the caller.
"""
