"""nasdip-zoo: NAS-DIP's searched deep image priors as a model zoo."""

__version__ = "0.1.0"
