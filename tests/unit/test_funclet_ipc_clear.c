/* ef_ipc_clear against the real kernel: a child in an IPC namespace of its own (as a container's
 * runner is) leaves a System V shared memory segment, message queue and semaphore set and a POSIX
 * message queue there; after ef_ipc_clear of that child, none of them is left, and the test's
 * own IPC namespace was not touched. Needs root (setns, unshare); skipped otherwise. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "funclet/ipc_clear.h"

/* The objects the child sees in its namespace: shm segments, message queues, semaphore sets,
 * and whether its POSIX queue still opens. */
struct seen {
    int shm, msg, sem;
    int mq_open;
};

static struct seen look(void)
{
    struct seen s;
    struct shm_info shm;
    s.shm = shmctl(0, SHM_INFO, (struct shmid_ds *)(void *)&shm) >= 0 ? shm.used_ids : -1;
    struct msginfo msg;
    s.msg = msgctl(0, MSG_INFO, (struct msqid_ds *)(void *)&msg) >= 0 ? msg.msgpool : -1;
    struct seminfo sem;
    s.sem = semctl(0, 0, SEM_INFO, &sem) >= 0 ? sem.semusz : -1;
    mqd_t q = mq_open("/ef-test-queue", O_RDONLY);
    s.mq_open = q != (mqd_t)-1;
    if (q != (mqd_t)-1)
        mq_close(q);
    return s;
}

/* The child: makes its namespace and its objects, reports, waits for a byte, reports again. */
static void child(int report, int go)
{
    if (unshare(CLONE_NEWIPC) < 0)
        _exit(2);
    if (shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600) < 0 ||
        msgget(IPC_PRIVATE, IPC_CREAT | 0600) < 0 || semget(IPC_PRIVATE, 2, IPC_CREAT | 0600) < 0)
        _exit(3);
    struct mq_attr attr = {.mq_maxmsg = 4, .mq_msgsize = 64};
    mqd_t q = mq_open("/ef-test-queue", O_CREAT | O_RDWR, 0600, &attr);
    if (q == (mqd_t)-1)
        _exit(4);
    mq_close(q);
    struct seen s = look();
    if (write(report, &s, sizeof(s)) != (ssize_t)sizeof(s))
        _exit(5);
    char b;
    if (read(go, &b, 1) != 1)
        _exit(6);
    s = look();
    _exit(write(report, &s, sizeof(s)) == (ssize_t)sizeof(s) ? 0 : 7);
}

static void test_clear(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    struct seen before_ours = look();
    int report[2], go[2];
    assert_int_equal(pipe(report), 0);
    assert_int_equal(pipe(go), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(report[0]);
        close(go[1]);
        child(report[1], go[0]);
    }
    close(report[1]);
    close(go[0]);
    struct seen s;
    assert_int_equal(read(report[0], &s, sizeof(s)), (ssize_t)sizeof(s));
    assert_int_equal(s.shm, 1);
    assert_int_equal(s.msg, 1);
    assert_int_equal(s.sem, 1);
    assert_true(s.mq_open);

    ef_error err = {0};
    int removed = ef_ipc_clear(pid, &err);
    if (removed < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(removed, 4);

    assert_int_equal(write(go[1], "x", 1), 1);
    assert_int_equal(read(report[0], &s, sizeof(s)), (ssize_t)sizeof(s));
    assert_int_equal(s.shm, 0);
    assert_int_equal(s.msg, 0);
    assert_int_equal(s.sem, 0);
    assert_false(s.mq_open);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    /* Our own namespace is as it was. */
    struct seen after_ours = look();
    assert_int_equal(after_ours.shm, before_ours.shm);
    assert_int_equal(after_ours.msg, before_ours.msg);
    assert_int_equal(after_ours.sem, before_ours.sem);

    /* A process that is gone is an error, not a crash. */
    assert_true(ef_ipc_clear(pid, &err) < 0);
    close(report[0]);
    close(go[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
