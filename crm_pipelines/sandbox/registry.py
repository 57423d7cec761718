"""The sandboxes ``crm-pipelines sandbox serve`` knows, by the key scripts use for them."""

from __future__ import annotations

from crm_pipelines.sandbox.base import CrmSandbox
from crm_pipelines.sandbox.hubspot.sandbox import HubSpotSandbox

SANDBOXES: dict[str, type[CrmSandbox]] = {
    HubSpotSandbox.name: HubSpotSandbox,
}
