"""gridgate: an inference exchange's Consumption API."""

__version__ = "0.1.0"
