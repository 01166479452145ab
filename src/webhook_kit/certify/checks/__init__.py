"""One module per requirement; each exposes ``CHECK_IDS`` and ``async def run(ctx)``."""
