/* Command-line flags with a generated `--help`.
 *
 * Each program describes its flags in a table; ef_options_parse() fills the targets and rejects
 * unknown flags, missing values and out-of-range numbers with a message naming the flag.
 * Accepted forms: `--name value`, `--name=value`, and `--flag` for booleans. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/error.h"

enum ef_option_type {
    EF_OPT_STRING, /* target: char ** (points into argv; not copied) */
    EF_OPT_INT,    /* target: int64_t *, checked against [min, max] */
    EF_OPT_BOOL,   /* target: bool *, set to true by the flag alone */
    EF_OPT_SIZE,   /* target: uint64_t *, bytes; accepts suffixes K, M, G (powers of 1024);
                      checked against [min, max] */
};

struct ef_option {
    const char *name; /* without leading dashes: "data-dir" */
    enum ef_option_type type;
    void *target;
    const char *metavar; /* "DIR", "N"; NULL for booleans */
    const char *help;    /* one sentence; the range and the default (the target's value) are
                            printed after it, as "(1 to 64, default: 8)" */
    int64_t min, max;    /* for EF_OPT_INT and EF_OPT_SIZE; both 0 means no range check */
};

/* Parses argv[start..argc). Stops at the first argument that does not start with "--" and stores
 * its index in *ret_next (argc when all were consumed).
 * Returns 0 on success, 1 when --help was given (usage already printed to stdout; the caller
 * exits 0), or -EINVAL with `err` filled. */
int ef_options_parse(const char *usage_line, const char *description, const struct ef_option *opts,
                     int argc, char **argv, int start, int *ret_next, ef_error *err);

/* Prints the usage text: the usage line, the description and every flag with its help, its
 * range (numbers and sizes with min/max) and its current (default) value. */
void ef_options_usage(FILE *out, const char *usage_line, const char *description,
                      const struct ef_option *opts);
