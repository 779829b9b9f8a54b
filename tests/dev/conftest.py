"""The operator on the control plane (`tier0_fixtures.operator`) for the local stack's bring-up test."""

from tier0_fixtures.operator import kube, namespace, operator, operator_kubeconfig  # noqa: F401
