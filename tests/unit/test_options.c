/* Flag parsing and the generated --help. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/options.h"

/* The flags of an imaginary daemon, with their defaults. */
struct flags {
    char *data_dir;
    int64_t port;
    int64_t offset; /* no range */
    bool verbose;
    bool colour;
    uint64_t memory;
    uint64_t cache; /* a size with a range */
};

static void flags_defaults(struct flags *f)
{
    f->data_dir = "/var/lib/easyfaas";
    f->port = 8080;
    f->offset = -3;
    f->verbose = false;
    f->colour = true;
    f->memory = 64ull << 20;
    f->cache = 1ull << 20;
}

#define OPTS(f)                                                                                    \
    {                                                                                              \
        {"data-dir", EF_OPT_STRING, &(f).data_dir, "DIR", "Where state is kept.", 0, 0},           \
            {"port", EF_OPT_INT, &(f).port, "PORT", "TCP port to listen on.", 1, 65535},           \
            {"offset", EF_OPT_INT, &(f).offset, NULL, "An unbounded number.", 0, 0},               \
            {"verbose", EF_OPT_BOOL, &(f).verbose, NULL, "Log debug messages.", 0, 0},             \
            {"colour", EF_OPT_BOOL, &(f).colour, NULL, "Colour the output.", 0, 0},                \
            {"memory", EF_OPT_SIZE, &(f).memory, "SIZE", "Memory for containers.", 0, 0},          \
            {"cache", EF_OPT_SIZE, &(f).cache, "SIZE", "Cache size.", 4096, 1 << 30}, {0},         \
    }

static int parse(struct flags *f, int argc, char **argv, int *next, ef_error *err)
{
    const struct ef_option opts[] = OPTS(*f);
    return ef_options_parse("prog [FLAGS] CMD", "Does things.", opts, argc, argv, 1, next, err);
}

static void test_forms(void **state)
{
    (void)state;
    struct flags f;
    flags_defaults(&f);
    char *argv[] = {"prog",           "--data-dir", "/tmp/x", "--port=9000",
                    "--verbose",      "--memory",   "2G",     "--offset=-42",
                    "--colour=false", "serve",      "--port", "1"};
    int argc = (int)(sizeof(argv) / sizeof(argv[0]));
    int next = -1;
    ef_error err = {0};
    assert_int_equal(parse(&f, argc, argv, &next, &err), 0);
    assert_string_equal(f.data_dir, "/tmp/x");
    assert_ptr_equal(f.data_dir, argv[2]); /* not copied */
    assert_int_equal(f.port, 9000);
    assert_true(f.verbose);
    assert_false(f.colour);
    assert_int_equal(f.memory, 2ull << 30);
    assert_int_equal(f.offset, -42);
    /* Parsing stops at the first positional argument; what follows is the caller's. */
    assert_int_equal(next, 9);
    assert_string_equal(argv[next], "serve");
}

static void test_all_consumed_and_terminator(void **state)
{
    (void)state;
    struct flags f;
    flags_defaults(&f);
    char *argv1[] = {"prog", "--port", "1"};
    int next = -1;
    assert_int_equal(parse(&f, 3, argv1, &next, NULL), 0);
    assert_int_equal(next, 3);
    assert_int_equal(f.port, 1);

    /* "--" ends the flags, so a positional argument may start with dashes. */
    char *argv2[] = {"prog", "--verbose", "--", "--port"};
    assert_int_equal(parse(&f, 4, argv2, &next, NULL), 0);
    assert_int_equal(next, 3);
    assert_int_equal(f.port, 1);

    /* A value may itself start with dashes when given as the next argument. */
    char *argv3[] = {"prog", "--data-dir", "--odd"};
    assert_int_equal(parse(&f, 3, argv3, &next, NULL), 0);
    assert_string_equal(f.data_dir, "--odd");
}

static void test_sizes(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t want;
    } ok[] = {
        {"0", 0},           {"123", 123},         {"4K", 4096},
        {"4k", 4096},       {"64M", 64ull << 20}, {"64MiB", 64ull << 20},
        {"3G", 3ull << 30}, {"1gb", 1ull << 30},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct flags f;
        flags_defaults(&f);
        char *argv[] = {"prog", "--memory", (char *)ok[i].text};
        assert_int_equal(parse(&f, 3, argv, NULL, NULL), 0);
        assert_int_equal(f.memory, ok[i].want);
    }
    static const char *const bad[] = {
        "", "M", "12X", "-1", "1.5G", "99999999999999999999", "17179869184G", "4 K", "4KK"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct flags f;
        flags_defaults(&f);
        char *argv[] = {"prog", "--memory", (char *)bad[i]};
        ef_error err = {0};
        assert_int_equal(parse(&f, 3, argv, NULL, &err), -EINVAL);
        assert_int_equal(err.code, -EINVAL);
        assert_non_null(strstr(err.msg, "--memory: expected a size"));
        assert_int_equal(f.memory, 64ull << 20); /* untouched */
    }

    /* A size with a range: both ends are allowed, and a refusal names the range as sizes. */
    static const struct {
        const char *text;
        uint64_t want;
    } in_range[] = {{"4K", 4096}, {"4096", 4096}, {"1G", 1ull << 30}, {"512M", 512ull << 20}};
    for (size_t i = 0; i < sizeof(in_range) / sizeof(in_range[0]); i++) {
        struct flags f;
        flags_defaults(&f);
        char *argv[] = {"prog", "--cache", (char *)in_range[i].text};
        assert_int_equal(parse(&f, 3, argv, NULL, NULL), 0);
        assert_int_equal(f.cache, in_range[i].want);
    }
    static const char *const out_of_range[] = {"0", "4095", "1073741825", "2G"};
    for (size_t i = 0; i < sizeof(out_of_range) / sizeof(out_of_range[0]); i++) {
        struct flags f;
        flags_defaults(&f);
        char *argv[] = {"prog", "--cache", (char *)out_of_range[i]};
        ef_error err = {0};
        assert_int_equal(parse(&f, 3, argv, NULL, &err), -EINVAL);
        char want[128];
        snprintf(want, sizeof(want), "--cache: expected a size between 4K and 1G, got '%s'",
                 out_of_range[i]);
        assert_string_equal(err.msg, want);
        assert_int_equal(f.cache, 1ull << 20); /* untouched */
    }
    /* A malformed size is refused as such, not as out of range. */
    struct flags f;
    flags_defaults(&f);
    char *argv[] = {"prog", "--cache=lots"};
    ef_error err = {0};
    assert_int_equal(parse(&f, 2, argv, NULL, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "--cache: expected a size in bytes"));
}

static void expect_error(char **argv, int argc, const char *msg)
{
    struct flags f;
    flags_defaults(&f);
    ef_error err = {0};
    int next = -7;
    assert_int_equal(parse(&f, argc, argv, &next, &err), -EINVAL);
    assert_string_equal(err.msg, msg);
    assert_int_equal(next, -7); /* out-parameters are not touched on failure */
}

static void test_errors(void **state)
{
    (void)state;
    char *a1[] = {"prog", "--port", "abc"};
    expect_error(a1, 3, "--port: expected an integer between 1 and 65535, got 'abc'");
    char *a2[] = {"prog", "--port=65536"};
    expect_error(a2, 2, "--port: expected an integer between 1 and 65535, got '65536'");
    char *a3[] = {"prog", "--port=0"};
    expect_error(a3, 2, "--port: expected an integer between 1 and 65535, got '0'");
    char *a4[] = {"prog", "--port=12abc"};
    expect_error(a4, 2, "--port: expected an integer between 1 and 65535, got '12abc'");
    char *a5[] = {"prog", "--foo"};
    expect_error(a5, 2, "unknown flag --foo; see --help");
    char *a6[] = {"prog", "--foo=bar"};
    expect_error(a6, 2, "unknown flag --foo; see --help");
    char *a7[] = {"prog", "--port"};
    expect_error(a7, 2, "--port: missing value (PORT); see --help");
    char *a8[] = {"prog", "--offset", "99999999999999999999"};
    expect_error(a8, 3, "--offset: expected an integer, got '99999999999999999999'");
    char *a9[] = {"prog", "--verbose=maybe"};
    expect_error(a9, 2, "--verbose: expected true or false, got 'maybe'");
    char *a10[] = {"prog", "--port="};
    expect_error(a10, 2, "--port: expected an integer between 1 and 65535, got ''");
    /* A prefix of a flag is not that flag. */
    char *a11[] = {"prog", "--po=1"};
    expect_error(a11, 2, "unknown flag --po; see --help");
}

/* Runs `fn` with stdout going to a temporary file and returns what it printed. */
static char *capture_stdout(int (*fn)(void *), void *arg, int *ret)
{
    char path[] = "/tmp/ef-test-options-XXXXXX";
    int fd = mkostemp(path, O_CLOEXEC);
    assert_true(fd >= 0);
    unlink(path);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    assert_true(dup2(fd, STDOUT_FILENO) >= 0);
    *ret = fn(arg);
    fflush(stdout);
    assert_true(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *buf = calloc(1, (size_t)len + 1);
    assert_int_equal(pread(fd, buf, (size_t)len, 0), len);
    close(fd);
    return buf;
}

static struct flags help_flags;

static int run_help(void *arg)
{
    char **argv = arg;
    int next = -1;
    return parse(&help_flags, 3, argv, &next, NULL);
}

static void check_usage_text(const char *out)
{
    assert_non_null(strstr(out, "Usage: prog [FLAGS] CMD\n"));
    assert_non_null(strstr(out, "Does things."));
    /* Each flag with its metavar, help and the target's current value. */
    assert_non_null(strstr(out, "--data-dir DIR"));
    assert_non_null(strstr(out, "Where state is kept. (default: /var/lib/easyfaas)"));
    assert_non_null(strstr(out, "--port PORT"));
    /* A number with a range shows it before the default; one without shows the default only. */
    assert_non_null(strstr(out, "TCP port to listen on. (1 to 65535, default: "));
    assert_non_null(strstr(out, "--offset N"));
    assert_non_null(strstr(out, "An unbounded number. (default: -3)\n"));
    assert_non_null(strstr(out, "--verbose "));
    assert_non_null(strstr(out, "Log debug messages. (default: false)"));
    assert_non_null(strstr(out, "Colour the output. (default: true)"));
    assert_non_null(strstr(out, "--memory SIZE"));
    assert_non_null(strstr(out, "Memory for containers. (default: 64M)\n"));
    /* A size's range is written as sizes are typed. */
    assert_non_null(strstr(out, "--cache SIZE"));
    assert_non_null(strstr(out, "Cache size. (4K to 1G, default: 1M)\n"));
    assert_non_null(strstr(out, "-h, --help"));
}

static void test_help(void **state)
{
    (void)state;
    flags_defaults(&help_flags);
    char *argv[] = {"prog", "--port=1234", "--help"};
    int ret = 0;
    char *out = capture_stdout(run_help, argv, &ret);
    assert_int_equal(ret, 1);
    check_usage_text(out);
    /* The default shown is the target's value at the time, here already changed by --port. */
    assert_non_null(strstr(out, "TCP port to listen on. (1 to 65535, default: 1234)"));
    free(out);

    flags_defaults(&help_flags);
    char *argv2[] = {"prog", "-h", "--port=notanumber"};
    out = capture_stdout(run_help, argv2, &ret);
    assert_int_equal(ret, 1);
    assert_non_null(strstr(out, "(1 to 65535, default: 8080)"));
    free(out);
}

static void test_usage_to_stream(void **state)
{
    (void)state;
    struct flags f;
    flags_defaults(&f);
    const struct ef_option opts[] = OPTS(f);
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    assert_non_null(mem);
    ef_options_usage(mem, "prog [FLAGS] CMD", "Does things.", opts);
    fclose(mem);
    check_usage_text(buf);
    assert_non_null(strstr(buf, "TCP port to listen on. (1 to 65535, default: 8080)\n"));
    /* A string flag without a default shows none. */
    assert_null(strstr(buf, "(null)"));
    free(buf);

    f.data_dir = NULL;
    f.memory = 1000;
    mem = open_memstream(&buf, &len);
    ef_options_usage(mem, "prog", NULL, opts);
    fclose(mem);
    assert_non_null(strstr(buf, "Where state is kept.\n"));
    assert_non_null(strstr(buf, "(default: 1000)"));
    assert_null(strstr(buf, "(null)"));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms), cmocka_unit_test(test_all_consumed_and_terminator),
        cmocka_unit_test(test_sizes), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_help),  cmocka_unit_test(test_usage_to_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
