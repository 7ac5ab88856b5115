# The runner: unit tests of its pure parts (label "unit") and the host-mode integration test of
# `easyfaas-runner init` with the bundled Python runtime (root; skipped otherwise).
ef_add_unit_test(test_runner_routes SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_runner_routes.c
                 LIBS efrunner)
ef_add_unit_test(test_runner_env SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_runner_env.c
                 LIBS efrunner)
ef_add_unit_test(test_runner_exit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_runner_exit.c
                 LIBS efrunner)
ef_add_unit_test(test_runner_log SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_runner_log.c
                 LIBS efrunner)
ef_add_integration_test(runner_init SCRIPT integration/runner_init.sh TIMEOUT 120)
# A Python runtime started ahead (--prestart python) and handed to the first function it fits.
ef_add_integration_test(runner_prestart SCRIPT integration/runner_prestart.sh TIMEOUT 120)
# A timeout with several invocations per runtime drains the runtime instead of killing it at once.
ef_add_integration_test(runner_drain SCRIPT integration/runner_drain.sh TIMEOUT 120)
# Through a pod: output written between invocations in the next invocation's log entry, and a
# runtime that reported an init error ended so that the next invocation runs init again.
ef_add_integration_test(runner_pod SCRIPT integration/runner_pod.sh TIMEOUT 180)
