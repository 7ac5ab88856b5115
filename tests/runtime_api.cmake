# The runner's Runtime API over real sockets without a container, the peak-memory parser, and
# the controller's function log store (label "unit"); end-to-end tests of the Python, Node.js
# and custom runtimes through the whole pod, with failures, limits, concurrency and logs (root;
# skipped otherwise).
ef_add_unit_test(test_runner_rapi SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_runner_rapi.c
                 ${CMAKE_CURRENT_SOURCE_DIR}/unit/loop_thread.c
                 LIBS efrunner)
ef_add_unit_test(test_function_logs SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_function_logs.c
                 LIBS efcontroller)
ef_add_integration_test(runtime_matrix SCRIPT integration/runtime_matrix.sh TIMEOUT 600)
ef_add_unit_test(test_runner_protocol
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_runner_protocol.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_controller_harness.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/fake_funclet.c
  LIBS efcontroller)
ef_add_integration_test(runtime_concurrency SCRIPT integration/runtime_concurrency.sh TIMEOUT 120)
ef_add_integration_test(runtime_logs SCRIPT integration/runtime_logs.sh TIMEOUT 300)
# Through a real pod: Runtime.InvalidEntrypoint for a missing or non-executable bootstrap,
# binary response bodies byte for byte, and a slow import reported as Init Duration (root).
ef_add_integration_test(invoke_contract SCRIPT integration/invoke_contract.sh TIMEOUT 300)
ef_add_unit_test(test_rapi_handover SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_rapi_handover.c
                 ${CMAKE_CURRENT_SOURCE_DIR}/unit/loop_thread.c
                 LIBS efrapi)
ef_add_integration_test(handover SCRIPT integration/handover.sh TIMEOUT 300)
