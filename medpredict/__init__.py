"""medpredict: trustworthy disease-risk prediction on CPU."""

__version__ = "0.1.0"
