"""The Responses API's rules that are not a wire format: stored responses (``stored.py``)."""
