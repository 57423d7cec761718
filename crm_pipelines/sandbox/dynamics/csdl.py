"""``$metadata``: a CSDL (EDMX) document for the served tables, generated from the catalog.

The real document is several megabytes for the whole organization; this one describes the five served
entity types with their properties, keys and single-valued navigation properties, enough for OData tools.
"""

from __future__ import annotations

import functools
from xml.sax.saxutils import quoteattr

from crm_pipelines.sandbox.dynamics.catalog import BY_LOGICAL, TABLES


@functools.cache
def csdl() -> str:
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">',
        "<edmx:DataServices>",
        '<Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" xmlns="http://docs.oasis-open.org/odata/ns/edm">',
        '<EntityType Name="crmbaseentity" Abstract="true"/>',
    ]
    for t in TABLES:
        lines.append(f'<EntityType Name="{t.logical_name}" BaseType="mscrm.crmbaseentity">')
        lines.append(f'<Key><PropertyRef Name="{t.primary_id}"/></Key>')
        for a in t.attributes:
            lines.append(f"<Property Name={quoteattr(a.column)} Type={quoteattr(a.odata_type)}/>")
        for n in t.navigation:
            partner = BY_LOGICAL[n.target].logical_name
            lines.append(f'<NavigationProperty Name="{n.name}" Type="mscrm.{partner}">'
                         f'<ReferentialConstraint Property="_{n.attribute}_value" '
                         f'ReferencedProperty="{BY_LOGICAL[n.target].primary_id}"/></NavigationProperty>')
        lines.append("</EntityType>")
    lines.append('<EntityContainer Name="System">')
    lines += [f'<EntitySet Name="{t.entity_set}" EntityType="Microsoft.Dynamics.CRM.{t.logical_name}"/>'
              for t in TABLES]
    lines += ["</EntityContainer>", "</Schema>", "</edmx:DataServices>", "</edmx:Edmx>"]
    return "\n".join(lines)
