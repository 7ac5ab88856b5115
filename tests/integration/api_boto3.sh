#!/usr/bin/env bash
# Runs api_boto3.py (the Lambda management API through Debian's boto3) against a real pod whose
# controller verifies SigV4 signatures (--auth-keys).
source "$(dirname "$0")/lib.sh"
require_root
if ! /usr/bin/python3 -c 'import boto3' 2>/dev/null; then
  echo "SKIP: $(basename "$0") needs boto3 for /usr/bin/python3 (Debian package python3-boto3)" >&2
  exit 77
fi

keys=$(mktemp /tmp/ef-api-keys.XXXXXX)
chmod 600 "$keys"
echo "AKIDAPIBOTO bo7o3secret" >"$keys"
EF_CONTROLLER_ARGS="--auth-keys $keys" pod_start
rm -f "$keys" # read once at start

# Nothing from the environment may sign for the test.
unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_DEFAULT_REGION
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_EC2_METADATA_DISABLED=true
EF_BASE=$EF_BASE EF_DATA=$EF_DATA EF_KEY_ID=AKIDAPIBOTO EF_KEY_SECRET=bo7o3secret \
  /usr/bin/python3 "$EF_SOURCE_DIR/tests/integration/api_boto3.py" || fail "boto3 checks failed"

note "stop"
pod_stop
echo "PASS"
