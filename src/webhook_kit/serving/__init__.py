"""Running the kit's ASGI apps: the event loop, the servers (uvicorn, hypercorn) and readiness."""
