// A .js file in a "type": "module" package is an ES module.
export const handler = async () => ({ esm: typeof module === 'undefined', kind: 'type-module' });
