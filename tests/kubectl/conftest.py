"""The operator on the control plane (`tier0_fixtures.operator`) for `kubectl tier0` against it."""

from tier0_fixtures.operator import kube, namespace, operator, operator_kubeconfig  # noqa: F401
