"""The provider side: the settings, test, event and validation API under ``/validas/v1``."""
