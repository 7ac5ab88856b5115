'use strict';
// Requires a package that is not there: Runtime.ImportModuleError at init.
const missing = require('no-such-package');

exports.handler = async () => missing();
