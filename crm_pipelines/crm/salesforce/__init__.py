"""Salesforce REST API connector: OAuth, SOQL, query/queryAll, Bulk API 2.0 queries, collections, limits."""
