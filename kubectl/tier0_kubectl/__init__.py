"""`kubectl tier0`: the RegionPair from a terminal — status, what is at risk, switchover, pause,
history, and failover drills whose reports stay on the pair (annotation and Event)."""
