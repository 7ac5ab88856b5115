# The Lambda-compatible management API (issue 5): unit tests without root (real SQLite, real
# sockets, AWS's SigV4 test vectors) and integration tests through a real pod with Debian's AWS
# CLI (/usr/bin/aws, package awscli) and boto3 (package python3-boto3); those skip themselves
# when the client is not installed.
ef_add_unit_test(test_controller_sigv4
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_controller_sigv4.c LIBS efcontroller)
ef_add_unit_test(test_controller_manage
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_controller_manage.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_controller_harness.c
  LIBS efcontroller)
# The AWS CLI takes about a second per call to start; the script makes about 80.
ef_add_integration_test(api_cli SCRIPT integration/api_cli.sh TIMEOUT 600)
ef_add_integration_test(api_boto3 SCRIPT integration/api_boto3.sh TIMEOUT 300)
# Body limits per route (controller/api_limits.h): 413 from the headers alone, code routes
# keep their large limit.
ef_add_integration_test(http_limits SCRIPT integration/http_limits.sh TIMEOUT 180)
# A function's NetworkMode (none, bridge, host with --allow-host-network) seen from a handler
# in a real pod, and a mode update giving the function new containers.
ef_add_integration_test(function_network SCRIPT integration/function_network.sh TIMEOUT 240)
# Operator-facing behaviour of the controller: flags refused by name, one controller per data
# dir and per funclet socket, the listen warning, and SIGTERM answering a running invocation 503.
ef_add_integration_test(controller_ops SCRIPT integration/controller_ops.sh TIMEOUT 180)
