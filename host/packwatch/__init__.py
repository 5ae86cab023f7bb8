"""packwatch: host tools for the packwatch battery-pack monitor."""
__version__ = "0.1.0"
