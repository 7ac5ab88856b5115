# The Node.js runtime (runtimes/node) and custom provided.* runtimes, through the whole pod
# (root; skipped otherwise).
ef_add_integration_test(runtime_node SCRIPT integration/runtime_node.sh TIMEOUT 300)
ef_add_integration_test(runtime_provided SCRIPT integration/runtime_provided.sh TIMEOUT 300)
