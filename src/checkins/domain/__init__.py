"""The cleaning core: pure Python, no I/O."""
