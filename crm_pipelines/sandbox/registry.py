"""The sandboxes ``crm-pipelines sandbox serve`` knows, by the key scripts use for them.

Each entry names the module holding the sandbox class. A CRM whose module is not in this checkout yet is
left out rather than breaking the others, so each sandbox can land on its own.
"""

from __future__ import annotations

import importlib

from crm_pipelines.sandbox.base import CrmSandbox

_MODULES = {
    "hubspot": ("crm_pipelines.sandbox.hubspot.sandbox", "HubSpotSandbox"),
    "salesforce": ("crm_pipelines.sandbox.salesforce.sandbox", "SalesforceSandbox"),
    "dynamics": ("crm_pipelines.sandbox.dynamics.sandbox", "DynamicsSandbox"),
}


def _load() -> dict[str, type[CrmSandbox]]:
    found: dict[str, type[CrmSandbox]] = {}
    for name, (module_name, class_name) in _MODULES.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name is None or not module_name.startswith(e.name):
                raise  # a real missing dependency inside the sandbox, not an absent sandbox
            continue
        found[name] = getattr(module, class_name)
    return found


SANDBOXES: dict[str, type[CrmSandbox]] = _load()
