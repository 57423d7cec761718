"""Dynamics 365 sandbox: the Dataverse Web API v9.2 (OData v4) and an Entra ID token endpoint, on one port.

Serve it with ``crm-pipelines sandbox serve --only dynamics --tls`` (Microsoft's SDK insists on HTTPS) and
read the announced credentials: ``token_url`` + ``client_id``/``client_secret`` + ``scope`` for the
client-credentials flow, or the ready ``access_token``; ``api_url`` is ``<org url>/api/data/v9.2``.

Modules: ``catalog`` (tables, columns, option sets, limits), ``store`` (SQLite), ``seed`` (from the shared
universe), ``odata`` (query options, ``$filter`` -> SQL), ``query`` (reads, paging, change tracking),
``render`` (row JSON and annotations), ``records`` (writes and bulk messages), ``metadata`` and ``csdl``
(``EntityDefinitions``, ``$metadata``), ``batch`` (``$batch``), ``auth`` (tokens), ``limits`` (service
protection), ``api`` (routing), ``sandbox`` (the framework's entry point), ``bench`` (paging benchmark).
"""
