"""Where a running ``crm-pipelines sandbox serve`` announces its endpoints, inside its data directory.

Clients configured without credentials read this file to find the sandboxes (SPEC TOP-2).
"""

ENDPOINTS_FILE = "endpoints.json"
