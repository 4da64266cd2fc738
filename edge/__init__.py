"""edgecam: a camera node that detects, records, signs and publishes what happens."""

__version__ = "0.1.0"
