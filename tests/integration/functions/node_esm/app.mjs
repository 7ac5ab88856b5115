// An ES module handler (.mjs), loaded with import(); top-level await runs once, at init.
import { createHash } from 'node:crypto';

const startedAt = await Promise.resolve(Date.now());
let count = 0;

export const handler = async (event) => {
  count += 1;
  return {
    esm: typeof require === 'undefined',
    count,
    startedAt,
    sha: createHash('sha256').update(JSON.stringify(event)).digest('hex'),
  };
};
