"""The sync's durable memory in SQL (SQLAlchemy Core): SQLite by default, PostgreSQL in production and CI."""
