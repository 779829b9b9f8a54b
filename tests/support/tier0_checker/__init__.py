"""A Jepsen-style checker of tier0's transitions (`make bench BENCH=transitions`, and a short
variant in the control-plane tests): real programs on free loopback ports, a writer whose every
acknowledged message is recorded, faults injected with kill -9 and toxiproxy, verdicts computed
from what the active Redis holds afterwards. Test support: nothing in the product imports it."""
