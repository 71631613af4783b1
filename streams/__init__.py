"""lapse: decide in real time when an authenticated session must end."""

__version__ = "0.1.0"
