'use strict';
// The runtime's own error types and the shapes Lambda's Node.js runtime gives errors: the
// document posted to the Runtime API ({errorType, errorMessage, trace}) and the one-line form
// written to the function's log.

const util = require('util');

// An error document larger than this is cut: it ends up in the client's response body.
const MAX_MESSAGE_CHARS = 256 * 1024;
const MAX_TRACE_LINES = 200;

class RuntimeError extends Error {}

// Lambda names these "Runtime.<Class>", and so does its client-visible errorType.
const classes = {
  ImportModuleError: class ImportModuleError extends RuntimeError {},
  HandlerNotFound: class HandlerNotFound extends RuntimeError {},
  MalformedHandlerName: class MalformedHandlerName extends RuntimeError {},
  UserCodeSyntaxError: class UserCodeSyntaxError extends RuntimeError {},
  MarshalError: class MarshalError extends RuntimeError {},
  UnmarshalError: class UnmarshalError extends RuntimeError {},
  // Our own: the Runtime API refused the post of an outcome (see runtime.js).
  ResponseRefused: class ResponseRefused extends RuntimeError {},
  UnhandledPromiseRejection: class UnhandledPromiseRejection extends RuntimeError {
    constructor(reason, promise) {
      super(reason);
      this.reason = reason;
      this.promise = promise;
    }
  },
};
for (const [name, cls] of Object.entries(classes)) {
  cls.prototype.name = `Runtime.${name}`;
}

// A response the Runtime API refused for its size; not a class of Lambda's runtime but of its
// service, hence the other prefix.
class ResponseSizeTooLarge extends Error {}
ResponseSizeTooLarge.prototype.name = 'Function.ResponseSizeTooLarge';

function isErrorLike(obj) {
  return (
    !!obj &&
    typeof obj.name === 'string' &&
    obj.name !== '' &&
    typeof obj.message === 'string' &&
    obj.message !== '' &&
    typeof obj.stack === 'string'
  );
}

function cut(text) {
  return text.length > MAX_MESSAGE_CHARS ? text.slice(0, MAX_MESSAGE_CHARS) + '...' : text;
}

// Lambda's error document for anything thrown or rejected. Values that are not errors keep
// their JavaScript type as errorType ("string", "object", "number"...), as in Lambda; values
// that cannot even be turned into text (null, undefined, a throwing toString) become "handled".
function toRapidResponse(error) {
  try {
    if (util.types.isNativeError(error) || isErrorLike(error)) {
      const stack = typeof error.stack === 'string' ? error.stack.split('\n') : [];
      return {
        errorType: cut(String(error.name)),
        errorMessage: cut(String(error.message)),
        trace: stack.slice(0, MAX_TRACE_LINES).map(cut),
      };
    }
    return {
      errorType: typeof error,
      errorMessage: cut(error.toString()),
      trace: [],
    };
  } catch (_) {
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving one or ' +
        'more of its message, name, and stack',
      trace: [],
    };
  }
}

// The error as Lambda logs it: a tab, then JSON with the error's own enumerable properties.
function toFormatted(error) {
  try {
    return (
      '\t' +
      JSON.stringify(error, (_key, value) => {
        if (!(value instanceof Error)) return value;
        const out = Object.assign(
          { errorType: value.name, errorMessage: value.message, code: value.code },
          value,
        );
        if (typeof value.stack === 'string') out.stack = value.stack.split('\n');
        return out;
      })
    );
  } catch (_) {
    return '\t' + JSON.stringify(toRapidResponse(error));
  }
}

module.exports = { ...classes, ResponseSizeTooLarge, toRapidResponse, toFormatted };
