# funclet: unit tests of its pure parts (no root) and the container integration test (root).
set(_fdir ${CMAKE_SOURCE_DIR}/funclet)
ef_add_unit_test(test_funclet_validate
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_funclet_validate.c ${_fdir}/validate.c LIBS m)
ef_add_unit_test(test_funclet_mount_plan
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_funclet_mount_plan.c ${_fdir}/mount_plan.c)
ef_add_unit_test(test_funclet_wait_status
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_funclet_wait_status.c ${_fdir}/wait_status.c)
ef_add_unit_test(test_funclet_cgroup_parse
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_funclet_cgroup_parse.c ${_fdir}/cgroup_parse.c)
ef_add_unit_test(test_funclet_mountinfo
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_funclet_mountinfo.c ${_fdir}/mountinfo.c)
ef_add_unit_test(test_funclet_ipam
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_funclet_ipam.c ${_fdir}/ipam.c)
ef_add_unit_test(test_funclet_capacity
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_funclet_capacity.c ${_fdir}/capacity.c)
# Clearing a container's IPC namespace before its reuse, on the real kernel (root).
ef_add_unit_test(test_funclet_ipc_clear
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_funclet_ipc_clear.c ${_fdir}/ipc_clear.c)
ef_add_unit_test(test_funclet_userns
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_funclet_userns.c ${_fdir}/userns.c)
# The cgroup backends: v1 on the real kernel (root; skipped otherwise), v2 on a fake cgroupfs.
ef_add_unit_test(test_funclet_cgroup
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_funclet_cgroup.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/fake_cgroupfs.c ${_fdir}/cgroup.c
          ${_fdir}/cgroup_parse.c ${_fdir}/cgroup_v1.c ${_fdir}/cgroup_v2.c
  LIBS PkgConfig::CGROUP)
set_tests_properties(test_funclet_cgroup PROPERTIES LABELS "unit;root" RUN_SERIAL TRUE)
# The seccomp profile, compiled and installed in a child (no root needed: no_new_privs).
ef_add_unit_test(test_funclet_seccomp
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_funclet_seccomp.c ${_fdir}/seccomp.c
          ${_fdir}/seccomp_profile.c
  LIBS PkgConfig::SECCOMP)
foreach(_t test_funclet_validate test_funclet_mount_plan test_funclet_wait_status
           test_funclet_cgroup_parse test_funclet_cgroup test_funclet_seccomp
           test_funclet_mountinfo test_funclet_ipam test_funclet_capacity test_funclet_userns)
  target_compile_definitions(${_t} PRIVATE _GNU_SOURCE)
endforeach()

ef_add_integration_test(funclet_containers SCRIPT integration/funclet_containers.sh TIMEOUT 180)
# Start-up checks; two funclets on one host: data dir, host id range and bridge are never shared.
ef_add_integration_test(funclet_start SCRIPT integration/funclet_start.sh TIMEOUT 180)
# The warm pool, warmup/reset, busy and capacity errors, network modes, recycling.
ef_add_integration_test(funclet_pool SCRIPT integration/funclet_pool.sh TIMEOUT 300)
# 500 create -> warmup -> reset -> destroy cycles, then every resource back to its baseline.
ef_add_integration_test(funclet_leak SCRIPT integration/funclet_leak.sh TIMEOUT 300)

# The probe that isolation.sh runs inside a container as the user's code.
add_executable(ef-probe ${CMAKE_CURRENT_SOURCE_DIR}/probe/ef-probe.c)
set_target_properties(ef-probe PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
# Twice: with a user namespace per container (isolation) and without (isolation_nouserns).
ef_add_integration_test(isolation SCRIPT integration/isolation.sh TIMEOUT 300)
ef_add_integration_test(isolation_nouserns SCRIPT integration/isolation.sh TIMEOUT 300)
set_property(TEST isolation_nouserns APPEND PROPERTY ENVIRONMENT EF_ISOLATION_USERNS=off)
