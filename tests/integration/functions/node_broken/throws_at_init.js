'use strict';
// Throws while the module is evaluated: the error itself is the init error.
throw new Error('cannot start without configuration');
