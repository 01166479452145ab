"""The kit's endpoint: an HTTPS, OAuth-protected webhook receiver that records what it gets."""
