"""pytest fixtures that tests in several behaviour folders use (tests/README.md).

`tier0_fixtures.controlplane` is registered for every test by tests/conftest.py (`pytest_plugins`).
The others define fixtures whose names another family uses too (`namespace`, `operator`,
`api_factory`), so each folder's conftest imports the family it needs, and a reader of that conftest
sees where a fixture comes from: `operator` (the operator as a subprocess on the control plane),
`standin` (a RegionPair and an operator stand-in for the region API), `api` (the region API in
process over a real redis-server). The fixtures the root conftest defines (redis-server, mosquitto,
rabbitmq-server, the control plane) are the programs themselves.
"""
