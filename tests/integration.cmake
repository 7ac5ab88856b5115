# End-to-end tests of the whole pod (root; skipped otherwise).
ef_add_integration_test(end_to_end SCRIPT integration/end_to_end.sh TIMEOUT 300)
ef_add_integration_test(all_in_one SCRIPT integration/all_in_one.sh TIMEOUT 300)
