'use strict';
// Handlers that write more output than the runner's pipe holds, faster than it is read: every
// line must be in the pipe before the invocation's response is posted, in the order written.

// Lines "line <i> <pad>" for i in 1..event.lines, ~100 bytes each, through console.log (the
// default), process.stdout.write ("stdout") or alternating between the two ("mixed").
exports.flood = async (event) => {
  const pad = 'x'.repeat(70);
  const how = event.how || 'console';
  for (let i = 1; i <= event.lines; i++) {
    if (how === 'console' || (how === 'mixed' && i % 2 === 0)) {
      console.log(`line ${i} ${pad}`);
    } else {
      process.stdout.write(`line ${i} ${pad}\n`);
    }
  }
  return { lines: event.lines, heapMB: Math.round(process.memoryUsage().heapUsed / 1048576) };
};

// An error whose name (the Lambda-Runtime-Function-Error-Type header) has a control character.
exports.controlType = async () => {
  const err = new Error('ctl');
  err.name = 'Bad\x01Type';
  throw err;
};
