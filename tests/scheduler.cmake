# The scheduler and operations of the controller (issue 5): admission, queues and the metrics'
# text as unit tests (no root, a real libuv loop), and the rest through a real pod (root):
# reserved and node-wide concurrency, queueing, capacity and reclaim, idle keep-alive, timeouts,
# health checks, funclet and controller restarts, and GET /metrics checked by promtool
# (Debian package prometheus; that test skips itself without it).
ef_add_unit_test(test_controller_scheduler
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_controller_scheduler.c LIBS efcontroller)
# Code collection keeps the code of an invocation queued for the node-wide limit (a real
# controller, a fake funclet).
ef_add_unit_test(test_controller_code_hold
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_controller_code_hold.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_controller_harness.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/fake_funclet.c
  LIBS efcontroller)
# The watch on a runner past an invocation's Timeout, against a real RPC peer on a socketpair.
ef_add_unit_test(test_runner_watch
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_runner_watch.c LIBS efcontroller)
ef_add_integration_test(scheduler_concurrency SCRIPT integration/scheduler_concurrency.sh TIMEOUT 180)
ef_add_integration_test(scheduler_capacity SCRIPT integration/scheduler_capacity.sh TIMEOUT 180)
ef_add_integration_test(scheduler_pool SCRIPT integration/scheduler_pool.sh TIMEOUT 180)
ef_add_integration_test(scheduler_funclet SCRIPT integration/scheduler_funclet.sh TIMEOUT 180)
ef_add_integration_test(scheduler_metrics SCRIPT integration/scheduler_metrics.sh TIMEOUT 180)
# Which container serves when there are several candidates: a cold spare, the most recently used
# idle one, and, on a node whose memory is full, the least recently used idle one of another
# function reclaimed (capacity through --reserved-memory).
ef_add_integration_test(scheduler_choice SCRIPT integration/scheduler_choice.sh TIMEOUT 300)
# Per-container concurrency (PerExecutionEnvironmentMaxConcurrency) through a real pod.
ef_add_integration_test(container_concurrency SCRIPT integration/container_concurrency.sh TIMEOUT 180)
