"""``webhook-kit certify``: does an endpoint meet the documented requirements, check by check."""
