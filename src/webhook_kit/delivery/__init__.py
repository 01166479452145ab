"""The reference delivery engine: retry policy (pure), durable store, and the dispatcher."""
