# A runtime whose init failed: the runner marks its answers ("init_error", "late"), the controller
# never hands that container out again and places a late invocation once more (label "unit",
# against a fake funclet and runners); through a real pod, bursts against a Python module that
# raises at import and a custom runtime that posts /init/error, where every answer must come from
# an init of its own (root; skipped otherwise).
ef_add_unit_test(test_controller_init_error
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_controller_init_error.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_controller_harness.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/fake_funclet.c
  LIBS efcontroller)
ef_add_integration_test(init_error SCRIPT integration/init_error.sh TIMEOUT 180)
