"""easyflow: a cost-aware workflow scheduler for a single Linux box."""

__version__ = "0.1.0"
