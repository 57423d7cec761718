-- The sync's state database, beside Dagster's in the same server (run once, when the volume is new).
CREATE DATABASE crm_pipelines;
