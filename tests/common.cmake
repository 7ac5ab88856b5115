# Tests of the common library (label "unit") and the ef-rpc-call tool used by shell tests.
ef_add_unit_test(test_rpc_frame SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_rpc_frame.c)
ef_add_unit_test(test_rpc SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_rpc.c)
ef_add_unit_test(test_options SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_options.c)
ef_add_unit_test(test_fsutil SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_fsutil.c)
ef_add_unit_test(test_cpulist SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_cpulist.c)
find_package(Threads REQUIRED)
ef_add_unit_test(test_sched_policy SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_sched_policy.c
                 LIBS Threads::Threads)

# The command-line client the shell tests use to talk to funclet and the runner:
# $EF_BUILD_DIR/ef-rpc-call.
add_executable(ef-rpc-call ${CMAKE_CURRENT_SOURCE_DIR}/tools/rpc-call.c)
target_link_libraries(ef-rpc-call PRIVATE efcommon)
set_target_properties(ef-rpc-call PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
