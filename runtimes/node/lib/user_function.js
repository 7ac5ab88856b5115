'use strict';
// Finds and loads the handler named by _HANDLER, with Lambda's rules:
//
//   "dir/sub/file.export.path": the module is dir/sub/file below the task root, tried as the
//   extensionless file, file.js (CommonJS unless the nearest package.json says
//   "type": "module"), file.mjs (ES module) and file.cjs, in that order, then as a package
//   or directory that require() can resolve; the export path may be nested ("a.b").
//
// Load failures come out as Lambda's Runtime.* errors.

const fs = require('fs');
const path = require('path');
const errors = require('./errors');

function isFile(p) {
  try {
    return fs.statSync(p).isFile();
  } catch (_) {
    return false;
  }
}

// True when the package.json nearest to `file` has "type": "module".
function inModulePackage(file, root) {
  let dir = path.dirname(file);
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (isFile(pj)) {
      try {
        return JSON.parse(fs.readFileSync(pj, 'utf8')).type === 'module';
      } catch (_) {
        return false; // Node itself reports a broken package.json when it loads the module.
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir || dir === root) return false;
    dir = parent;
  }
}

// Node's ES loader takes URLs; the `url` module is only needed on this path.
function importFile(file) {
  return import(require('url').pathToFileURL(file).href);
}

async function loadModule(root, moduleRoot, moduleName) {
  const base = path.resolve(root, moduleRoot, moduleName);
  if (isFile(base)) return require(base);
  const esm = isFile(base + '.js') && inModulePackage(base + '.js', root);
  if (isFile(base + '.js')) return esm ? importFile(base + '.js') : require(base + '.js');
  if (isFile(base + '.mjs')) return importFile(base + '.mjs');
  if (isFile(base + '.cjs')) return require(base + '.cjs');
  // A directory with an index or a package under node_modules, resolved as require() would
  // from the task root. This is also what fails with "Cannot find module" when nothing fits.
  return require(require.resolve(moduleName, { paths: [path.resolve(root, moduleRoot), root] }));
}

function splitHandler(handler) {
  if (typeof handler !== 'string' || handler === '') {
    throw new errors.MalformedHandlerName('Bad handler: _HANDLER is empty');
  }
  if (handler.includes('..')) {
    throw new errors.MalformedHandlerName(
      `'${handler}' is not a valid handler name. Use absolute paths when specifying root ` +
        'directories in handler names.',
    );
  }
  const base = path.basename(handler);
  const moduleRoot = handler.slice(0, handler.length - base.length);
  const match = /^([^.]*)\.(.*)$/.exec(base);
  if (!match || match[1] === '' || match[2] === '') {
    throw new errors.MalformedHandlerName(
      `Bad handler '${handler}': expected <file>.<export>, e.g. index.handler`,
    );
  }
  return { moduleRoot, moduleName: match[1], exportPath: match[2] };
}

// Resolves to the handler function; rejects with a Runtime.* error (or whatever the module
// threw while it was being evaluated, as Lambda reports that as is).
async function loadHandler(root, handler) {
  const { moduleRoot, moduleName, exportPath } = splitHandler(handler);
  let mod;
  try {
    mod = await loadModule(root, moduleRoot, moduleName);
  } catch (e) {
    if (e instanceof SyntaxError) throw new errors.UserCodeSyntaxError(e);
    if (e && (e.code === 'MODULE_NOT_FOUND' || e.code === 'ERR_MODULE_NOT_FOUND')) {
      throw new errors.ImportModuleError(e);
    }
    throw e;
  }
  const fn = exportPath.split('.').reduce((obj, key) => (obj == null ? obj : obj[key]), mod);
  if (fn === undefined || fn === null) {
    throw new errors.HandlerNotFound(`${handler} is undefined or not exported`);
  }
  if (typeof fn !== 'function') {
    throw new errors.HandlerNotFound(`${handler} is not a function`);
  }
  return fn;
}

module.exports = { loadHandler, splitHandler };
