"""The kind path (`make kind-up`, `kind-e2e`, `kind-down`): tier0's charts on a kind cluster.

`engine` starts a Docker engine of the project's own where none answers (`make docker-up`),
`nodeimage` assembles the kind node image here from the binaries `hack/install-tools.sh --kind`
builds (kind's own `kind build node-image` pulls from registries), and `cluster` creates the
cluster, loads the images `make images` built and installs both charts as the built-in node does.
"""
