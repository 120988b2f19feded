"""Offer health: what each offer delivered (``window.py``, ``figures.py``), which offers may
serve (``offer_health.py``), the status report, and sharing it across processes.
"""
