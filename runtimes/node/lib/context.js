'use strict';
// The context object of one invocation, with the fields of Lambda's Node.js context.

const env = process.env;

// Client context and Cognito identity arrive as JSON headers (mobile SDK invocations only).
function parseJsonHeader(value) {
  if (value === undefined || value === '') return undefined;
  try {
    return JSON.parse(value);
  } catch (_) {
    return undefined;
  }
}

// `headers` are the /next response's (lower-case names); `completion` has succeed/fail/done,
// the legacy way of ending an invocation.
function buildContext(headers, completion) {
  const deadline = Number(headers['lambda-runtime-deadline-ms']);
  return {
    // Kept as a plain property: runtime.js reads it when the callback is called.
    callbackWaitsForEmptyEventLoop: true,
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
    // A string, as in Lambda.
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: headers['lambda-runtime-aws-request-id'],
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
    clientContext: parseJsonHeader(headers['lambda-runtime-client-context']),
    identity: parseJsonHeader(headers['lambda-runtime-cognito-identity']),
    // The invocation's own trace id: with concurrent invocations the process-wide
    // _X_AMZN_TRACE_ID cannot say whose it is, so it is not set then (see README.md).
    xRayTraceId: headers['lambda-runtime-trace-id'],
    getRemainingTimeInMillis() {
      return Number.isFinite(deadline) ? Math.max(deadline - Date.now(), 0) : 0;
    },
    succeed: completion.succeed,
    fail: completion.fail,
    done: completion.done,
  };
}

module.exports = { buildContext };
