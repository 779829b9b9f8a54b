"""The contract every tier0 component shares (operator, services, simulators, kubectl plugin, dev
tooling): payloads, topics, Redis keys, the RegionPair model and the pipeline rules (contract/README.md)."""
