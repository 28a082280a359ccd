"""Where bytes live: RegionStore (the residency guard), the audit log, the catalog; keys live outside."""
