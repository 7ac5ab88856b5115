# funclet: unit tests of its pure parts (no root) and the container integration test (root).
set(_fdir ${CMAKE_SOURCE_DIR}/funclet)
ef_add_unit_test(test_funclet_validate
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_funclet_validate.c ${_fdir}/validate.c LIBS m)
ef_add_unit_test(test_funclet_mount_plan
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_funclet_mount_plan.c ${_fdir}/mount_plan.c)
ef_add_unit_test(test_funclet_wait_status
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_funclet_wait_status.c ${_fdir}/wait_status.c)
foreach(_t test_funclet_validate test_funclet_mount_plan test_funclet_wait_status)
  target_compile_definitions(${_t} PRIVATE _GNU_SOURCE)
endforeach()

ef_add_integration_test(funclet_containers SCRIPT integration/funclet_containers.sh TIMEOUT 180)
