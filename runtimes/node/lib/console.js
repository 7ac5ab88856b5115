'use strict';
// console.* in Lambda's log format: "<ISO time>\t<request id>\t<LEVEL>\t<message>", one write per
// call. Outside an invocation the request id reads "undefined", as in Lambda.
//
// Writes go to stdout, which is a pipe to the runner: Node writes pipes synchronously on Linux,
// so every line is out before the invocation's response is posted and lands in its log.

const util = require('util');

let requestId;

function setRequestId(id) {
  requestId = id;
}

function write(level, args) {
  const line = `${new Date().toISOString()}\t${requestId}\t${level}\t${util.format(...args)}\n`;
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

module.exports = { patchConsole, setRequestId };
