"""tier0's one Kubernetes access layer, on `kubernetes_asyncio` (the official client's asyncio port).

The operator, the region API, `kubectl tier0` and the dev tooling all talk to the apiserver through
it: `config` finds the credentials (an explicit kubeconfig, KUBECONFIG, the in-cluster service
account, ~/.kube/config), `errors` is the one error family, `patches` builds the request bodies
(pure), and `client.Client` makes the calls, reading a RegionPair as the contract's model.
"""
