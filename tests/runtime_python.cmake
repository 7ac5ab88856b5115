# The bundled Python runtime's Runtime API client against a scripted Runtime API (no root needed).
ef_add_integration_test(runtime_python_client SCRIPT integration/runtime_python_client.sh TIMEOUT 180)
