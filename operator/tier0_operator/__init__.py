"""tier0 operator: keeps a RegionPair available (probes, replication, switchover, failover)."""
