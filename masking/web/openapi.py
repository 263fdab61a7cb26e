"""Placeholder replaced below."""
def document():
    return {}
