"""beatfeeds: one feed per police beat, with privacy built in."""

__version__ = "0.1.0"
