'use strict';
// Handlers in each of the styles Lambda's Node.js runtime accepts, and ones that fail in each
// of the ways it reports. The module-level counter shows whether a warm container is reused.

let count = 0;

exports.asyncHandler = async (event, context) => {
  count += 1;
  console.log(`counter at ${count} for ${context.awsRequestId}`);
  await new Promise((resolve) => setTimeout(resolve, 5));
  return { style: 'async', event, count, pid: process.pid, uid: process.getuid() };
};

exports.promiseHandler = (event) =>
  new Promise((resolve) => setImmediate(() => resolve({ style: 'promise', event })));

// The result is held back until the event loop is empty: the timer must have run by then.
exports.callbackHandler = (event, context, callback) => {
  const result = { style: 'callback', event, timerRan: false };
  setTimeout(() => {
    result.timerRan = true;
  }, 50);
  callback(null, result);
};

exports.callbackNoWait = (event, context, callback) => {
  context.callbackWaitsForEmptyEventLoop = false;
  callback(null, { style: 'callback-no-wait' });
};

exports.callbackError = (event, context, callback) => {
  callback(new TypeError('bad callback input'));
};

exports.legacySucceed = (event, context) => {
  context.succeed({ style: 'succeed' });
};

// Neither a promise nor the callback: Lambda answers null once the event loop is empty.
exports.syncNothing = () => 'ignored';

exports.throwing = async () => {
  const err = new Error('the event was not to my liking');
  err.name = 'ValidationError';
  throw err;
};

exports.rejecting = () => Promise.reject(new RangeError('out of range'));

exports.throwString = async () => {
  throw 'just a string';
};

exports.unhandledRejection = async () => {
  Promise.reject(new Error('nobody catches me'));
  await new Promise((resolve) => setTimeout(resolve, 1000));
  return 'too late';
};

exports.circular = async () => {
  const a = {};
  a.self = a;
  return a;
};

exports.context = async (event, context) => ({
  awsRequestId: context.awsRequestId,
  functionName: context.functionName,
  functionVersion: context.functionVersion,
  invokedFunctionArn: context.invokedFunctionArn,
  memoryLimitInMB: context.memoryLimitInMB,
  logGroupName: context.logGroupName,
  logStreamName: context.logStreamName,
  remaining: context.getRemainingTimeInMillis(),
  callbackWaitsForEmptyEventLoop: context.callbackWaitsForEmptyEventLoop,
  hasClientContext: context.clientContext !== undefined,
  env: {
    handler: process.env._HANDLER,
    taskRoot: process.env.LAMBDA_TASK_ROOT,
    executionEnv: process.env.AWS_EXECUTION_ENV,
    traceId: process.env._X_AMZN_TRACE_ID,
  },
});

exports.logging = async (event, context) => {
  console.log('hello from console.log', { n: 1 });
  console.info('an info line');
  console.warn('a warning');
  console.error('an error line');
  return context.awsRequestId;
};

// Returns the event as it came, plus its size as Node measured it.
exports.echo = async (event) => ({ event, bytes: Buffer.byteLength(JSON.stringify(event)) });

exports.nested = { inner: async () => 'nested export' };

exports.notAFunction = 42;
