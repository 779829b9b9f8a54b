import sys

from tier0_dev.node import cluster

sys.exit(cluster.main(sys.argv[1:]))
