"""The catalog: instruments, suppliers and offers as one snapshot per process (``catalog.py``),
the reference instruments, operators' edits and price history.
"""
