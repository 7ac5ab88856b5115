# Unit tests of the controller (no root, no funclet: real SQLite, real zips, real sockets).
ef_add_unit_test(test_controller_validate
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_controller_validate.c LIBS efcontroller)
ef_add_unit_test(test_controller_codestore
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_controller_codestore.c LIBS efcontroller)
ef_add_unit_test(test_controller_store
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_controller_store.c LIBS efcontroller)
ef_add_unit_test(test_controller_api
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_controller_api.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_controller_harness.c
  LIBS efcontroller)
# Invocation through the scheduler runs against a real funclet and runners in
# tests/integration/scheduler_*.sh (tests/scheduler.cmake), end_to_end.sh and runtime_*.sh.
ef_add_unit_test(test_controller_request_id
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_controller_request_id.c LIBS efcontroller)
ef_add_integration_test(data_dir_modes SCRIPT integration/data_dir_modes.sh TIMEOUT 180)
