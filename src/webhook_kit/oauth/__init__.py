"""OAuth 2.0 pieces: the kit's own token issuer, the bearer check, and (for senders) the client."""
