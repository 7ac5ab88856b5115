#!/usr/bin/env bash
# The Lambda management API through Debian's AWS CLI (/usr/bin/aws, package awscli), against a
# real pod whose controller verifies SigV4 signatures (--auth-keys): create, get, list with
# paging, code and configuration updates, versions and qualifiers, invoke, concurrency, delete,
# the code garbage left behind, and every error the API documents.
# shellcheck disable=SC2016 # '$LATEST' is Lambda's literal version name, not a variable
source "$(dirname "$0")/lib.sh"
require_root
if [ ! -x /usr/bin/aws ]; then
  echo "SKIP: $(basename "$0") needs /usr/bin/aws (Debian package awscli)" >&2
  exit 77
fi

keys=$(mktemp /tmp/ef-api-keys.XXXXXX)
chmod 600 "$keys"
echo "AKIDAPICLI clisecret" >"$keys"
EF_CONTROLLER_ARGS="--auth-keys $keys" pod_start
rm -f "$keys" # read once at start

tmp=$EF_DATA/api-cli
mkdir -p "$tmp"
cat >"$tmp/credentials" <<'EOF'
[default]
aws_access_key_id = AKIDAPICLI
aws_secret_access_key = clisecret
[wrongsecret]
aws_access_key_id = AKIDAPICLI
aws_secret_access_key = not-the-secret
[stranger]
aws_access_key_id = AKIDSTRANGER
aws_secret_access_key = clisecret
EOF
# One attempt: errors are what is tested, and retried 429s and 500s would only be slower.
# Payloads are given as JSON text, not base64 (AWS CLI v2's default).
for profile in default "profile wrongsecret" "profile stranger"; do
  printf '[%s]\nregion = us-east-1\nretry_mode = standard\nmax_attempts = 1\n' "$profile"
  printf 'cli_binary_format = raw-in-base64-out\n'
done >"$tmp/config"
export AWS_CONFIG_FILE=$tmp/config AWS_SHARED_CREDENTIALS_FILE=$tmp/credentials AWS_PAGER=
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_DEFAULT_REGION

cli() { /usr/bin/aws --endpoint-url "$EF_BASE" lambda "$@"; }
# ok OUT ARGS...: runs `aws lambda ARGS` and keeps its JSON output in OUT.
ok() {
  local out=$1
  shift
  cli "$@" --output json >"$out" 2>"$out.err" || fail "aws lambda $*: $(cat "$out.err")"
}
# err TYPE ARGS...: `aws lambda ARGS` must fail with Lambda's error TYPE.
err() {
  local type=$1
  shift
  if cli "$@" >"$tmp/err.out" 2>"$tmp/err.txt"; then
    fail "aws lambda $* succeeded; expected $type"
  fi
  grep -q "($type)" "$tmp/err.txt" || fail "aws lambda $*: expected $type, got: $(cat "$tmp/err.txt")"
}
j() { json_get "$@"; }
b64sha() { openssl dgst -sha256 -binary "$1" | base64 -w0; }

src=$EF_SOURCE_DIR/tests/integration/functions/api_echo
mkdir -p "$tmp/v2" "$tmp/broken"
sed 's/^CODE = "v1"/CODE = "v2"/' "$src/app.py" >"$tmp/v2/app.py"
sed 's/^CODE = "v1"/CODE = "broken"/' "$src/app.py" >"$tmp/broken/app.py"
/usr/bin/python3 "$EF_SOURCE_DIR/deploy/lib/zip-dir.py" "$src" "$tmp/v1.zip"
/usr/bin/python3 "$EF_SOURCE_DIR/deploy/lib/zip-dir.py" "$tmp/v2" "$tmp/v2.zip"
/usr/bin/python3 "$EF_SOURCE_DIR/deploy/lib/zip-dir.py" "$tmp/broken" "$tmp/broken.zip"
hex_of() { sha256sum "$1" | cut -d' ' -f1; }
v1hex=$(hex_of "$tmp/v1.zip")
v2hex=$(hex_of "$tmp/v2.zip")
out=$tmp/out.json
inv=$tmp/invoke.json
create() { # create NAME ZIP [ARGS...]
  local name=$1 zip=$2
  shift 2
  ok "$out" create-function --function-name "$name" --runtime python3.11 --handler app.handler \
    --role arn:aws:iam::123456789012:role/lambda --zip-file "fileb://$zip" "$@"
}

note "create-function, get-function, get-function-configuration"
create echo "$tmp/v1.zip" --memory-size 256 --timeout 10 --description "api test" \
  --environment 'Variables={TAG=one}'
[ "$(j "$out" 'j["FunctionName"]')" = echo ] || fail "create: $(cat "$out")"
[ "$(j "$out" 'j["CodeSha256"]')" = "$(b64sha "$tmp/v1.zip")" ] || fail "CodeSha256: $(cat "$out")"
[ "$(j "$out" 'j["CodeSize"]')" = "$(stat -c %s "$tmp/v1.zip")" ] || fail "CodeSize"
[ "$(j "$out" 'j["Version"]')" = '$LATEST' ] || fail "Version"
[ "$(j "$out" 'j["State"]')" = Active ] || fail "State"
ok "$out" get-function --function-name echo
[ "$(j "$out" 'j["Configuration"]["MemorySize"]')" = 256 ] || fail "get-function: $(cat "$out")"
[ "$(j "$out" 'j["Configuration"]["Environment"]["Variables"]["TAG"]')" = one ] || fail "env"
ok "$out" get-function-configuration --function-name echo
[ "$(j "$out" 'j["Description"]')" = "api test" ] || fail "get-function-configuration: $(cat "$out")"
[ "$(j "$out" 'j["Timeout"]')" = 10 ] || fail "Timeout"
ok "$out" get-function --function-name arn:aws:lambda:us-east-1:123456789012:function:echo
[ "$(j "$out" 'j["Configuration"]["FunctionName"]')" = echo ] || fail "get-function by ARN"

note "invoke"
ok "$out" invoke --function-name echo --payload '{"n": 1}' "$inv"
[ "$(j "$out" 'j["StatusCode"]')" = 200 ] || fail "invoke: $(cat "$out")"
[ "$(j "$out" 'j["ExecutedVersion"]')" = '$LATEST' ] || fail "ExecutedVersion: $(cat "$out")"
[ "$(j "$inv" 'j["code"], j["tag"], j["event"]["n"], j["memory"]')" = "('v1', 'one', 1, 256)" ] ||
  fail "invoke result: $(cat "$inv")"
ok "$out" invoke --function-name echo --invocation-type DryRun --payload '{}' "$inv"
[ "$(j "$out" 'j["StatusCode"]')" = 204 ] || fail "DryRun: $(cat "$out")"
ok "$out" invoke --function-name echo --payload '{"fail": true}' --log-type Tail "$inv"
[ "$(j "$out" 'j["StatusCode"], j["FunctionError"], j["ExecutedVersion"]')" = "(200, 'Unhandled', '\$LATEST')" ] ||
  fail "a function error: $(cat "$out")"
[ "$(j "$inv" 'j["errorType"], j["errorMessage"]')" = "('ValueError', 'asked to fail')" ] ||
  fail "the function error's body: $(cat "$inv")"
j "$out" 'j["LogResult"]' | base64 -d | grep -q '^REPORT RequestId: ' &&
  j "$out" 'j["LogResult"]' | base64 -d | grep -q 'ValueError: asked to fail' ||
  fail "the log tail of a function error: $(j "$out" 'j["LogResult"]' | base64 -d)"
ok "$out" invoke --function-name echo --invocation-type Event --payload '{"n": 2}' "$inv"
[ "$(j "$out" 'j["StatusCode"]')" = 202 ] || fail "an Event invocation: $(cat "$out")"

note "publish-version, update-function-code --publish, update-function-configuration"
ok "$out" publish-version --function-name echo --description "first"
[ "$(j "$out" 'j["Version"]')" = 1 ] || fail "publish-version: $(cat "$out")"
[ "$(j "$out" 'j["FunctionArn"]')" = "arn:aws:lambda:us-east-1:000000000000:function:echo:1" ] ||
  fail "version ARN: $(cat "$out")"
ok "$out" update-function-code --function-name echo --zip-file "fileb://$tmp/v2.zip" --publish
[ "$(j "$out" 'j["Version"]')" = 2 ] || fail "update-function-code --publish: $(cat "$out")"
[ "$(j "$out" 'j["CodeSha256"]')" = "$(b64sha "$tmp/v2.zip")" ] || fail "new CodeSha256"
ok "$out" update-function-configuration --function-name echo --memory-size 512 \
  --environment 'Variables={TAG=two}' --description "reconfigured" --timeout 20
[ "$(j "$out" 'j["MemorySize"], j["Timeout"], j["Version"]')" = "(512, 20, '\$LATEST')" ] ||
  fail "update-function-configuration: $(cat "$out")"
ok "$out" publish-version --function-name echo
[ "$(j "$out" 'j["Version"]')" = 3 ] || fail "third version: $(cat "$out")"
ok "$out" publish-version --function-name echo
[ "$(j "$out" 'j["Version"]')" = 3 ] || fail "an unchanged publish made a new version"
ok "$out" list-versions-by-function --function-name echo
[ "$(j "$out" '[v["Version"] for v in j["Versions"]]')" = "['\$LATEST', '1', '2', '3']" ] ||
  fail "list-versions-by-function: $(cat "$out")"

note "each version runs its own code and configuration"
check_version() { # check_version QUALIFIER CODE TAG MEMORY
  ok "$out" invoke --function-name echo --qualifier "$1" --payload '{}' "$inv"
  [ "$(j "$out" 'j["ExecutedVersion"]')" = "$1" ] || fail "ExecutedVersion for $1: $(cat "$out")"
  [ "$(j "$inv" 'j["code"], j["tag"], j["memory"], j["version"]')" = "('$2', '$3', $4, '$1')" ] ||
    fail "version $1 ran: $(cat "$inv")"
}
check_version 1 v1 one 256
check_version 2 v2 one 256
check_version 3 v2 two 512
check_version '$LATEST' v2 two 512
# A configuration-only update: the warm container of the old configuration is not used again.
ok "$out" update-function-configuration --function-name echo --environment 'Variables={TAG=three}'
check_version '$LATEST' v2 three 512
[ "$(j "$inv" 'j["arn"]')" = "arn:aws:lambda:us-east-1:000000000000:function:echo:\$LATEST" ] ||
  [ "$(j "$inv" 'j["arn"]')" = "arn:aws:lambda:us-east-1:000000000000:function:echo" ] ||
  fail "invoked ARN: $(cat "$inv")"
ok "$out" invoke --function-name echo:1 --payload '{}' "$inv"
[ "$(j "$inv" 'j["code"], j["arn"]')" = "('v1', 'arn:aws:lambda:us-east-1:000000000000:function:echo:1')" ] ||
  fail "name:qualifier invoke: $(cat "$inv")"
ok "$out" invoke --function-name arn:aws:lambda:us-east-1:123456789012:function:echo:2 \
  --payload '{}' "$inv"
[ "$(j "$out" 'j["ExecutedVersion"]')" = 2 ] || fail "ARN:qualifier invoke: $(cat "$out")"
ok "$out" get-function --function-name echo --qualifier 1
[ "$(j "$out" 'j["Configuration"]["Version"], j["Configuration"]["MemorySize"]')" = "('1', 256)" ] ||
  fail "get-function --qualifier 1: $(cat "$out")"
err ResourceNotFoundException invoke --function-name echo --qualifier 9 --payload '{}' "$inv"
err ResourceNotFoundException get-function --function-name echo --qualifier live

note "list-functions with paging"
for n in alpha bravo charlie; do create "$n" "$tmp/v1.zip"; done
ok "$out" list-functions --page-size 1
[ "$(j "$out" '[f["FunctionName"] for f in j["Functions"]]')" = "['alpha', 'bravo', 'charlie', 'echo']" ] ||
  fail "list-functions --page-size 1 (every page followed): $(cat "$out")"
ok "$out" list-functions --max-items 2
[ "$(j "$out" '[f["FunctionName"] for f in j["Functions"]]')" = "['alpha', 'bravo']" ] ||
  fail "list-functions --max-items 2: $(cat "$out")"
token=$(j "$out" 'j["NextToken"]')
ok "$out" list-functions --max-items 2 --starting-token "$token"
[ "$(j "$out" '[f["FunctionName"] for f in j["Functions"]]')" = "['charlie', 'echo']" ] ||
  fail "list-functions second page: $(cat "$out")"
ok "$out" list-functions --function-version ALL --page-size 2
[ "$(j "$out" 'len(j["Functions"])')" = 7 ] || fail "list-functions ALL: $(cat "$out")"

note "concurrency"
ok "$out" put-function-concurrency --function-name alpha --reserved-concurrent-executions 0
[ "$(j "$out" 'j["ReservedConcurrentExecutions"]')" = 0 ] || fail "put: $(cat "$out")"
ok "$out" get-function-concurrency --function-name alpha
[ "$(j "$out" 'j["ReservedConcurrentExecutions"]')" = 0 ] || fail "get: $(cat "$out")"
err TooManyRequestsException invoke --function-name alpha --payload '{}' "$inv"
ok "$out" delete-function-concurrency --function-name alpha
ok "$out" get-function-concurrency --function-name alpha
# The CLI prints nothing for the empty document Lambda answers.
! grep -q ReservedConcurrentExecutions "$out" || fail "after delete: $(cat "$out")"
ok "$out" invoke --function-name alpha --payload '{}' "$inv"
ok "$out" put-function-concurrency --function-name alpha --reserved-concurrent-executions 10
ok "$out" get-function --function-name alpha
[ "$(j "$out" 'j["Concurrency"]["ReservedConcurrentExecutions"]')" = 10 ] || fail "get-function Concurrency"
err InvalidParameterValueException put-function-concurrency --function-name bravo \
  --reserved-concurrent-executions 5000
err ResourceNotFoundException put-function-concurrency --function-name ghost \
  --reserved-concurrent-executions 1

note "errors"
err ResourceNotFoundException get-function --function-name ghost
err ResourceNotFoundException invoke --function-name ghost --payload '{}' "$inv"
err ResourceConflictException create-function --function-name echo --runtime python3.11 \
  --handler app.handler --role r --zip-file "fileb://$tmp/v1.zip"
err InvalidParameterValueException create-function --function-name bad --runtime cobol85 \
  --handler app.handler --role r --zip-file "fileb://$tmp/v1.zip"
err InvalidParameterValueException create-function --function-name bad --runtime python3.11 \
  --handler nodot --role r --zip-file "fileb://$tmp/v1.zip"
err InvalidParameterValueException create-function --function-name bad --runtime python3.11 \
  --handler app.handler --memory-size 20000 --role r --zip-file "fileb://$tmp/v1.zip"
err InvalidParameterValueException create-function --function-name bad --runtime python3.11 \
  --handler app.handler --timeout 901 --role r --zip-file "fileb://$tmp/v1.zip"
err InvalidParameterValueException create-function --function-name "$(printf 'x%.0s' {1..65})" \
  --runtime python3.11 --handler app.handler --role r --zip-file "fileb://$tmp/v1.zip"
err InvalidParameterValueException create-function --function-name bad --runtime python3.11 \
  --handler app.handler --role r --zip-file "fileb://$tmp/v1.zip" \
  --environment "Variables={BIG=$(head -c 5000 /dev/zero | tr '\0' a)}"
# A zip the CLI accepts but whose entry would land outside /var/task.
/usr/bin/python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1], "w").writestr("../evil.py", "x")' \
  "$tmp/junk.zip"
err InvalidParameterValueException create-function --function-name bad --runtime python3.11 \
  --handler app.handler --role r --zip-file "fileb://$tmp/junk.zip"
err InvalidParameterValueException update-function-configuration --function-name echo:1 --timeout 5
err InvalidParameterValueException delete-function --function-name echo --qualifier '$LATEST'
head -c $((7 * 1024 * 1024)) /dev/zero | tr '\0' ' ' >"$tmp/big.json"
printf '{}' >>"$tmp/big.json"
err RequestTooLargeException invoke --function-name echo --payload "fileb://$tmp/big.json" "$inv"
# A function whose code vanished from the data dir cannot start: 500 ServiceException.
create broken "$tmp/broken.zip"
broken_hex=$(hex_of "$tmp/broken.zip")
rm -rf "$EF_DATA/code/zips/$broken_hex.zip" "$EF_DATA/code/extracted/$broken_hex"
err ServiceException invoke --function-name broken --payload '{}' "$inv"

note "SigV4: a wrong secret, an unknown key and no signature are refused"
err InvalidSignatureException --profile wrongsecret list-functions
err UnrecognizedClientException --profile stranger get-function --function-name echo
err MissingAuthenticationTokenException --no-sign-request list-functions
code=$(curl -sS -o "$tmp/curl.json" -w '%{http_code}' "$EF_BASE/2015-03-31/functions/")
[ "$code" = 403 ] || fail "unsigned curl got $code"
[ "$(curl -sS -o /dev/null -w '%{http_code}' "$EF_BASE/healthz")" = 200 ] || fail "/healthz needs no signature"

note "deleting a version, then the function, removes the code nothing uses any more"
[ -e "$EF_DATA/code/zips/$v1hex.zip" ] || fail "v1 code missing before the deletes"
ok "$out" delete-function --function-name echo --qualifier 1
err ResourceNotFoundException get-function --function-name echo --qualifier 1
ok "$out" invoke --function-name echo --qualifier 2 --payload '{}' "$inv"
# alpha, bravo and charlie still use the v1 zip: it stays.
sleep 0.5
[ -e "$EF_DATA/code/zips/$v1hex.zip" ] || fail "code still in use was removed"
for n in alpha bravo charlie echo; do ok "$out" delete-function --function-name "$n"; done
err ResourceNotFoundException get-function --function-name echo
err ResourceNotFoundException delete-function --function-name echo
for _ in $(seq 100); do
  [ ! -e "$EF_DATA/code/zips/$v1hex.zip" ] && [ ! -e "$EF_DATA/code/zips/$v2hex.zip" ] && break
  sleep 0.1
done
[ ! -e "$EF_DATA/code/zips/$v1hex.zip" ] || fail "unused v1 code left in the code store"
[ ! -e "$EF_DATA/code/zips/$v2hex.zip" ] || fail "unused v2 code left in the code store"
[ ! -e "$EF_DATA/code/extracted/$v2hex" ] || fail "unused v2 tree left in the code store"
ok "$out" list-functions
[ "$(j "$out" '[f["FunctionName"] for f in j["Functions"]]')" = "['broken']" ] ||
  fail "after the deletes: $(cat "$out")"

note "stop"
pod_stop
echo "PASS"
