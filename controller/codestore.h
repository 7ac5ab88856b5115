/* Function code on disk, content-addressed by the zip's sha256 (see docs/architecture.md):
 *
 *   <code_root>/zips/<hex>.zip        the uploaded zip, written atomically, 0600 in a 0700
 *                                     directory: only the controller reads it
 *   <code_root>/extracted/<hex>/      its contents: files 0644 (0755 when the zip marks them
 *                                     executable), directories 0755, readable by any uid
 *
 * Extraction is zip-slip safe: absolute names, ".." components and symlink entries are
 * rejected, and the entry count and the unzipped size are capped. It goes to a temporary
 * directory that is renamed into place once complete, so extracted/<hex> either is whole or
 * does not exist; an existing one is reused.
 *
 * Nothing here touches process-wide state, so it may run on a libuv worker thread. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define EF_SHA256_LEN     32
#define EF_SHA256_HEX_LEN 64

/* Lambda's limits for a zip package. */
#define EF_CODE_MAX_UNZIPPED (250ull * 1024 * 1024)
#define EF_CODE_MAX_ENTRIES  10000u
/* An entry's name: at most this many bytes and this many directories deep. Deeper trees cost a
 * descriptor per level to remove, and with the directories they imply the work to create grows
 * with the square of the depth (a few kilobytes of zip could make hundreds of thousands). */
#define EF_CODE_MAX_NAME  1024u
#define EF_CODE_MAX_DEPTH 64u

struct ef_zip_limits {
    uint64_t max_unzipped; /* total bytes of all files */
    unsigned max_entries;  /* files and directories, those the names imply included */
};

/* The limits above, for callers that have no reason to differ. */
extern const struct ef_zip_limits ef_zip_default_limits;

/* sha256 of `len` bytes. */
void ef_sha256(const void *data, size_t len, unsigned char digest[EF_SHA256_LEN]);

/* sha256 of `len` bytes as 64 lower-case hex digits and a NUL. */
void ef_sha256_hex(const void *data, size_t len, char hex[EF_SHA256_HEX_LEN + 1]);

/* Creates <code_root> and extracted/ (0755), zips/ (0700), and removes temporary directories a
 * previous run left behind. */
int ef_codestore_init(const char *code_root, ef_error *err);

/* Extracts the zip held in memory into the existing, empty directory `dest`. -EINVAL (message
 * for the user in `err`) when the zip is invalid, unsafe or over a limit; another negative errno
 * when the file system fails. */
int ef_zip_extract_buffer(const void *zip, size_t len, const char *dest,
                          const struct ef_zip_limits *limits, ef_error *err);

/* Stores a zip: computes its sha256, extracts it (unless extracted/<hex> exists) and writes
 * zips/<hex>.zip. On success fills `ret_hex` and `ret_digest` (may be NULL). Errors as for
 * ef_zip_extract_buffer. */
int ef_codestore_put(const char *code_root, const void *zip, size_t len,
                     const struct ef_zip_limits *limits, char ret_hex[EF_SHA256_HEX_LEN + 1],
                     unsigned char ret_digest[EF_SHA256_LEN], ef_error *err);

/* Makes sure extracted/<hex> exists, extracting zips/<hex>.zip again when it was removed.
 * Blocks only on that (rare) extraction; the common case is one stat(). */
int ef_codestore_ensure_extracted(const char *code_root, const char *hex,
                                  const struct ef_zip_limits *limits, ef_error *err);

/* Returns the malloc'd path <code_root>/extracted/<hex>, or NULL when memory runs out. */
char *ef_codestore_extracted_path(const char *code_root, const char *hex);

/* Lists the sha256 (hex) of every code on disk: zips/<hex>.zip and extracted/<hex>/, each once
 * (temporary entries are skipped). *ret_hexes is a malloc'd array of *ret_n malloc'd strings. */
int ef_codestore_list(const char *code_root, char ***ret_hexes, size_t *ret_n, ef_error *err);

/* Removes the code with sha256 `hex`: extracted/<hex>/ is first renamed to a temporary name (so
 * that it is never seen half removed) and then removed, and zips/<hex>.zip is unlinked. Missing
 * parts are fine. May run on a worker thread. */
int ef_codestore_remove(const char *code_root, const char *hex, ef_error *err);
