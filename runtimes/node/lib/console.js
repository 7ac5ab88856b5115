'use strict';
// console.* in Lambda's log format: "<ISO time>\t<request id>\t<LEVEL>\t<message>", one write per
// call. Outside an invocation the request id reads "undefined", as in Lambda.
//
// Writes go to stdout, a pipe to the runner that stderr shares. Node makes a pipe nonblocking
// and queues in memory what the pipe cannot take at once, so a handler that logs faster than the
// runner reads would have its response posted while its last lines are still queued (they then
// land after END, or nowhere when the runtime ends), and a flood of lines would fill the heap.
// makeOutputBlocking() therefore turns both streams' handles blocking at start: every write,
// console.* or the handler's own process.stdout.write, is in the pipe when it returns, and a
// handler that outruns the reader is held back instead. outputDrained() covers what could still
// be queued (a handle without setBlocking, or a process sharing the pipe that made it
// nonblocking again): the runtime waits for it before posting an outcome.
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

// Blocking writes cost nothing when the pipe has room (the write is the same one system call)
// and replace an unbounded in-memory queue when it has not. Both streams are created first:
// creating one sets the shared pipe nonblocking again.
function makeOutputBlocking() {
  const streams = [process.stdout, process.stderr];
  for (const stream of streams) {
    const handle = stream._handle;
    if (handle && typeof handle.setBlocking === 'function') handle.setBlocking(true);
  }
}

// null when everything written to stdout and stderr has reached the pipe; otherwise a promise
// that resolves once it has (a write's callback runs after those queued before it).
function outputDrained() {
  const pending = [];
  for (const stream of [process.stdout, process.stderr]) {
    if (stream.writableLength > 0) {
      pending.push(new Promise((resolve) => stream.write('', () => resolve())));
    }
  }
  return pending.length === 0 ? null : Promise.all(pending);
}

function patchConsole() {
  makeOutputBlocking();
  for (const [method, level] of Object.entries(levels)) {
    console[method] = (...args) => write(level, args);
  }
}

module.exports = { patchConsole, setRequestId, runWithRequestId, outputDrained };
