"""Local developer tasks for Invoke (``tasks.py``), one module per namespace."""
