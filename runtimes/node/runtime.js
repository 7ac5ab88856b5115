'use strict';
// EasyFaaS Node.js runtime: the invocation loop on the AWS Lambda Runtime API, with Lambda's
// Node.js handler contract.
//
// A handler ends an invocation in one of three ways, as in Lambda:
//   * it returns a promise (async function): its value or rejection is the outcome, at once;
//   * it calls callback(err, result): an error is posted at once, a result once the event loop
//     is empty (or at once when the handler has set context.callbackWaitsForEmptyEventLoop =
//     false); the legacy context.succeed/fail/done post at once;
//   * it does neither: the result is null once the event loop is empty.
// "The event loop is empty" is Node's 'beforeExit' event: the runtime's own keep-alive socket is
// unref'd while idle, so only the handler's work (timers, sockets...) keeps the loop alive.
//
// An exception or promise rejection nobody catches ends the process, as in Lambda: it is
// posted as the current invocation's error (or as the init error before the first invocation)
// and the runtime exits with 129 (exception) or 128 (rejection).
//
// With AWS_LAMBDA_MAX_CONCURRENCY = N > 1 the runner hands the runtime up to N invocations at
// once: N loops poll /next in this one process and their handlers interleave on the event
// loop. Each invocation keeps its own context, and console lines carry its request id (see
// lib/console.js). The event loop is never empty then (the other loops' polls are pending), so
// nothing waits for it: callback(null, result) answers at once whatever
// callbackWaitsForEmptyEventLoop says, and a handler that returns no promise and takes no
// callback parameter answers null as soon as it returns. _X_AMZN_TRACE_ID, one variable for the
// whole process, is not set (context.xRayTraceId has each invocation's). An uncaught exception
// or rejection cannot be traced to one invocation: it fails every invocation in flight, and the
// runtime exits as with N = 1.

const errors = require('./lib/errors');
const { patchConsole, setRequestId, runWithRequestId, outputDrained } = require('./lib/console');
const { RapidClient, MAX_RESPONSE_BYTES } = require('./lib/rapid_client');
const { buildContext } = require('./lib/context');
const { loadHandler } = require('./lib/user_function');

const TASK_ROOT = process.env.LAMBDA_TASK_ROOT || '/var/task';
// The runner allows at most 64 invocations at once; a larger value is capped, not trusted.
const MAX_CONCURRENCY_LIMIT = 64;

// How many invocations run at once: AWS_LAMBDA_MAX_CONCURRENCY, 1 when unset or malformed.
function maxConcurrency() {
  const text = process.env.AWS_LAMBDA_MAX_CONCURRENCY;
  const n = /^[0-9]+$/.test(text || '') ? Number(text) : 1;
  return Math.min(Math.max(n, 1), MAX_CONCURRENCY_LIMIT);
}

const CONCURRENCY = maxConcurrency();
const CONCURRENT = CONCURRENCY > 1;

let client;
// The invocations not yet posted, and the last one (N = 1): {id, finished, sent (a promise
// once posted)}.
const inFlight = new Set();
// Set once the handler is loaded; before that a fatal error is an init error.
let initialised = false;
let dying = false;

// Posts once everything written so far is in the pipe, so that it lands in the log of the
// invocation it belongs to (see lib/console.js).
async function afterOutput(post) {
  const drained = outputDrained();
  if (drained !== null) await drained;
  return post();
}

// A refusal other than 403 (already answered) or 413 (the runner failed the invocation as too
// large) leaves the invocation unanswered until its deadline: the runtime's own error is
// posted in place of the outcome the runner could not take.
function isRefused(status) {
  return status >= 400 && status < 500 && status !== 403 && status !== 413;
}

function postRefused(id, what, status) {
  const err = new errors.ResponseRefused(
    `The Runtime API refused the function's ${what} with HTTP ${status}`,
  );
  console.error('Invoke Error', errors.toFormatted(err));
  return afterOutput(() => client.postError(id, errors.toRapidResponse(err)));
}

async function postInvokeError(id, err) {
  console.error('Invoke Error', errors.toFormatted(err));
  const status = await afterOutput(() => client.postError(id, errors.toRapidResponse(err)));
  return isRefused(status) ? postRefused(id, 'error', status) : status;
}

// Serialises and posts one outcome.
async function send(id, outcome) {
  if ('error' in outcome) return postInvokeError(id, outcome.error);
  let body;
  try {
    body = JSON.stringify(outcome.result === undefined ? null : outcome.result);
  } catch (e) {
    const err = new errors.MarshalError(`Unable to stringify response body: ${e.message}`);
    return postInvokeError(id, err);
  }
  // JSON.stringify gives undefined for a function or a symbol: Lambda answers null.
  if (body === undefined) body = 'null';
  const status = await afterOutput(() => client.postResponse(id, body));
  if (isRefused(status)) return postRefused(id, 'response', status);
  if (status === 413) {
    return postInvokeError(
      id,
      new errors.ResponseSizeTooLarge(
        `Response payload size (${Buffer.byteLength(body, 'utf8')} bytes) exceeded maximum ` +
          `allowed payload size (${MAX_RESPONSE_BYTES} bytes).`,
      ),
    );
  }
  return status;
}

function isThenable(value) {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof value.then === 'function'
  );
}

// Runs one invocation; resolves once its outcome is posted.
function invoke(handler, inv) {
  if (CONCURRENT) return runWithRequestId(inv.id, () => invokeOne(handler, inv));
  setRequestId(inv.id);
  const traceId = inv.headers['lambda-runtime-trace-id'];
  if (traceId) process.env._X_AMZN_TRACE_ID = traceId;
  else delete process.env._X_AMZN_TRACE_ID;
  return invokeOne(handler, inv);
}

function invokeOne(handler, inv) {
  return new Promise((resolve, reject) => {
    const state = { id: inv.id, finished: false, sent: null, callbackOutcome: null };
    // With N = 1 the last invocation stays until the next one starts, so that a fatal error
    // right after its outcome was handed over waits for that post (see fatal()).
    if (!CONCURRENT) inFlight.clear();
    inFlight.add(state);

    const finish = (outcome) => {
      if (state.finished) return;
      state.finished = true;
      if (!CONCURRENT) process.removeListener('beforeExit', onBeforeExit);
      state.sent = send(state.id, outcome);
      if (CONCURRENT) state.sent.finally(() => inFlight.delete(state)).catch(() => {});
      state.sent.then(resolve, reject);
    };
    const onBeforeExit = () => finish(state.callbackOutcome || { result: undefined });
    const outcomeOf = (err, result) =>
      err === undefined || err === null ? { result } : { error: err };
    // A second completion is ignored with Lambda's warning.
    const completedTwice = () => {
      if (!state.finished && !state.callbackOutcome) return false;
      console.error(
        'Invocation has already been reported as done. Cannot call complete more than once ' +
          'per invocation.',
      );
      return true;
    };
    const explicit = (outcome) => {
      if (!completedTwice()) finish(outcome);
    };
    const context = buildContext(inv.headers, {
      succeed: (result) => explicit({ result }),
      fail: (err) => explicit({ error: err }),
      done: (err, result) => explicit(outcomeOf(err, result)),
    });
    const callback = (err, result) => {
      if (completedTwice()) return;
      // Errors go out at once; only a result waits for the event loop, as in Lambda.
      const outcome = outcomeOf(err, result);
      if ('result' in outcome && context.callbackWaitsForEmptyEventLoop && !CONCURRENT) {
        state.callbackOutcome = outcome;
      } else {
        finish(outcome);
      }
    };
    if (!CONCURRENT) process.on('beforeExit', onBeforeExit);

    let event;
    try {
      event = inv.body === '' ? {} : JSON.parse(inv.body);
    } catch (e) {
      finish({ error: new errors.UnmarshalError(`Unable to unmarshal input: ${e.message}`) });
      return;
    }
    try {
      const ret = handler(event, context, callback);
      if (isThenable(ret)) {
        ret.then(
          (result) => finish({ result }),
          (err) => finish({ error: err }),
        );
      } else if (CONCURRENT && handler.length < 3) {
        // No promise and no callback to wait for, and no empty event loop to wait for either.
        finish({ result: undefined });
      }
    } catch (e) {
      finish({ error: e });
    }
  });
}

// An error nobody caught: report it where Lambda does and exit.
function fatal(err, exitCode) {
  if (dying) return;
  dying = true;
  const doc = errors.toRapidResponse(err);
  const posts = [];
  if (!initialised) posts.push(afterOutput(() => client.postInitError(doc)));
  for (const state of inFlight) {
    if (!state.finished) {
      state.finished = true;
      posts.push(afterOutput(() => client.postError(state.id, doc)));
    } else if (state.sent) {
      // The outcome is already on its way: let that finish.
      posts.push(state.sent);
    }
  }
  Promise.allSettled(posts).then(() => process.exit(exitCode));
}

function reasonText(reason) {
  try {
    return reason === undefined || reason === null ? String(reason) : reason.toString();
  } catch (_) {
    return Object.prototype.toString.call(reason);
  }
}

async function main() {
  patchConsole();
  client = new RapidClient(process.env.AWS_LAMBDA_RUNTIME_API, CONCURRENCY);
  process.on('uncaughtException', (err) => {
    console.error('Uncaught Exception', errors.toFormatted(err));
    fatal(err, 129);
  });
  process.on('unhandledRejection', (reason, promise) => {
    const err = new errors.UnhandledPromiseRejection(reasonText(reason), promise);
    console.error('Unhandled Promise Rejection', errors.toFormatted(err));
    fatal(err, 128);
  });

  let handler;
  try {
    handler = await loadHandler(TASK_ROOT, process.env._HANDLER);
  } catch (err) {
    console.error('Uncaught Exception', errors.toFormatted(err));
    fatal(err, 129);
    return;
  }
  initialised = true;
  const loops = [];
  for (let i = 0; i < CONCURRENCY; i++) loops.push(serve(handler));
  await Promise.all(loops);
}

// One polling loop: /next, the handler, its outcome, again.
async function serve(handler) {
  while (!dying) {
    const inv = await client.next();
    if (dying) break;
    await invoke(handler, inv);
  }
}

main().catch((err) => {
  // A failure of the runtime itself (the Runtime API went away): nothing to post it to.
  process.stderr.write(`easyfaas node runtime: ${(err && err.stack) || err}\n`);
  process.exit(1);
});
