# HTTP server (common/http.c): real sockets on 127.0.0.1, one client thread.
find_package(Threads REQUIRED)
ef_add_unit_test(test_http SOURCES unit/test_http.c LIBS Threads::Threads)
