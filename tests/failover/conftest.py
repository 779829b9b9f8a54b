"""The operator on the control plane (`tier0_fixtures.operator`) for the reconciler tests here;
tests/failover/api has its own conftest (the region API's switchover endpoints)."""

from tier0_fixtures.operator import kube, namespace, operator, operator_kubeconfig  # noqa: F401
