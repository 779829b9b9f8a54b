"""The operator on the control plane (`tier0_fixtures.operator`) for what it may touch, and the
region API in process (`tier0_fixtures.api`) for admission under a flood."""

from tier0_fixtures.api import api_factory, client, redis  # noqa: F401
from tier0_fixtures.operator import kube, namespace, operator, operator_kubeconfig  # noqa: F401
