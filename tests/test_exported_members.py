from __future__ import annotations

import importlib
import subprocess
import sys

import webhook_kit


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert webhook_kit.__all__ == sorted(webhook_kit.__all__)
    for name in webhook_kit.__all__:
        assert getattr(webhook_kit, name) is not None


# Constants carry no ``__module__``: each is named with the module that defines it.
CONSTANT_HOMES = {
    "STATUSES": "webhook_kit.contract.statuses",
    "__version__": "webhook_kit._version",
}


def test_public_names_have_the_package_prefix() -> None:
    assert set(CONSTANT_HOMES) <= set(webhook_kit.__all__)
    for name in webhook_kit.__all__:
        value = getattr(webhook_kit, name)
        if name in CONSTANT_HOMES:
            home = importlib.import_module(CONSTANT_HOMES[name])
            assert getattr(home, name) is value, name
        else:
            # A class or function: defined in the package, not re-exported from a dependency.
            assert value.__module__.startswith("webhook_kit."), name


def test_importing_the_package_is_light() -> None:
    heavy = "('starlette', 'jsonschema', 'aiohttp', 'joserfc')"
    code = f"import sys, webhook_kit; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
