# Every C source and header follows the checked-in .clang-format.
find_program(CLANG_FORMAT clang-format)
if(CLANG_FORMAT)
  file(GLOB_RECURSE _ef_c_sources
    ${CMAKE_SOURCE_DIR}/common/*.[ch] ${CMAKE_SOURCE_DIR}/controller/*.[ch]
    ${CMAKE_SOURCE_DIR}/funclet/*.[ch] ${CMAKE_SOURCE_DIR}/runner/*.[ch]
    ${CMAKE_SOURCE_DIR}/tests/*.[ch] ${CMAKE_SOURCE_DIR}/bench/*.[ch])
  add_test(NAME clang_format COMMAND ${CLANG_FORMAT} --dry-run -Werror ${_ef_c_sources})
  set_tests_properties(clang_format PROPERTIES LABELS unit)
endif()
