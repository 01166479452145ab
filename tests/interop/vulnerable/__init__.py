"""Hand-written JWT verifiers, each with exactly one classic flaw, for certify's interop matrix."""
