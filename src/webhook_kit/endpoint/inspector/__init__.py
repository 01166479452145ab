"""The inspector page: live view of every request the endpoint receives (assets ship here)."""
