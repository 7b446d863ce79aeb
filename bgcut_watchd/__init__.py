"""bgcut-watchd: a watch-folder daemon for background removal through the BackgroundCut API v3."""

__version__ = "0.1.0"
