# Asynchronous invocations (issue 5, "Async invocations"; docs/async.md): the queue on real
# SQLite in a temporary directory, the API without funclet through the controller harness, and
# an integration test through a real pod (root) that includes the kill -9 durability test.
ef_add_unit_test(test_async_queue
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_async_queue.c LIBS efcontroller)
ef_add_unit_test(test_async_api
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_async_api.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_controller_harness.c
  LIBS efcontroller)
ef_add_integration_test(async SCRIPT integration/async.sh TIMEOUT 600)
ef_add_unit_test(test_async_delivery
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_async_delivery.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_controller_harness.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/fake_funclet.c
  LIBS efcontroller PkgConfig::SQLITE)
