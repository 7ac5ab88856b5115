'use strict';
// Does not parse: Lambda reports Runtime.UserCodeSyntaxError at init.
exports.handler = async (event) => {
  return { unbalanced: (event };
};
