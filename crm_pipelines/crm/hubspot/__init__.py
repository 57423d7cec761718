"""HubSpot CRM v3/v4 connector."""
