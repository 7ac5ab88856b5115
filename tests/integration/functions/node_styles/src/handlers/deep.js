'use strict';
// A handler below subdirectories: _HANDLER "src/handlers/deep.handler".
const path = require('path');

exports.handler = async () => ({ file: path.relative(process.env.LAMBDA_TASK_ROOT, __filename) });
