'use strict';
// console.* in Lambda's log format: "<ISO time>\t<request id>\t<LEVEL>\t<message>", one write per
// call. Outside an invocation the request id reads "undefined", as in Lambda.
//
// Writes go to stdout, which is a pipe to the runner: Node writes pipes synchronously on Linux,
// so every line is out before the invocation's response is posted and lands in its log.
//
// With one invocation at a time the request id is a plain variable set when an invocation
// starts. With several at once (AWS_LAMBDA_MAX_CONCURRENCY > 1) it travels with the
// invocation's asynchronous work instead (AsyncLocalStorage), so that a line logged after an
// await carries the id of the invocation that logged it, not that of the latest to start.

const util = require('util');

let requestId;
// Created only for concurrent invocations: tracking asynchronous contexts has a cost.
let storage = null;

function setRequestId(id) {
  requestId = id;
}

// Runs fn with `id` as the request id of everything it logs, now or in its continuations.
function runWithRequestId(id, fn) {
  if (storage === null) {
    const { AsyncLocalStorage } = require('async_hooks');
    storage = new AsyncLocalStorage();
  }
  return storage.run(id, fn);
}

function currentRequestId() {
  if (storage !== null) {
    const id = storage.getStore();
    if (id !== undefined) return id;
  }
  return requestId;
}

function write(level, args) {
  const id = currentRequestId();
  const line = `${new Date().toISOString()}\t${id}\t${level}\t${util.format(...args)}\n`;
  process.stdout.write(line);
}

// console.trace keeps Lambda's meaning (a TRACE level line), not Node's (a stack dump).
const levels = {
  trace: 'TRACE',
  debug: 'DEBUG',
  info: 'INFO',
  log: 'INFO',
  warn: 'WARN',
  error: 'ERROR',
  fatal: 'FATAL',
};

function patchConsole() {
  for (const [method, level] of Object.entries(levels)) {
    console[method] = (...args) => write(level, args);
  }
}

module.exports = { patchConsole, setRequestId, runWithRequestId };
