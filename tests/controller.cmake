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
ef_add_unit_test(test_controller_invoke
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_controller_invoke.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_controller_harness.c
  LIBS efcontroller)
