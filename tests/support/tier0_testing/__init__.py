"""Test support for tier0's tests and benchmarks (never imported by product code).

`tier0_testing.operator` drives the operator (subprocess, manifests, the writer), `tier0_testing.api`
writes realistic region data, starts the region API as a process and stands in for the operator,
`tier0_testing.ai` holds the tiny embedder and the fake Cohere API, `tier0_testing.leftovers` finds
the processes a test left running. `tests/support` is on pytest's `pythonpath`.
"""
