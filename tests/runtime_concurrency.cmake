# Per-container concurrency (runtime.start's max_concurrency) in the bundled Node.js and Python
# runtimes, under a real runner on the host (root; skipped otherwise).
ef_add_integration_test(runtime_concurrency_lang SCRIPT integration/runtime_concurrency_lang.sh TIMEOUT 180)
