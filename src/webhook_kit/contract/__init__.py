"""The wire contract: the nine statuses, the notification body, and the shipped JSON Schemas."""
