# Reuse of a container after container.reset and Lambda's Runtime.OutOfMemory: a runner that
# starts a fresh runtime once the previous one has ended (runner_reuse, host mode), a pod whose
# idle containers cool down with reset and serve another function next (container_reuse), and an
# invocation killed by the OOM killer (oom). Root only; skipped otherwise.
ef_add_integration_test(runner_reuse SCRIPT integration/runner_reuse.sh TIMEOUT 120)
ef_add_unit_test(test_runner_reuse SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_runner_reuse.c
                 LIBS efrunner)
ef_add_integration_test(container_reuse SCRIPT integration/container_reuse.sh TIMEOUT 180)
ef_add_integration_test(oom SCRIPT integration/oom.sh TIMEOUT 120)
