#include "controller/code_lane.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "controller/controller.h"
#include "controller/name_map.h"
#include "controller/store.h"

/* How long a collection that had to keep code for a container waits before trying again. */
#define RETRY_MS 30000

enum job_kind {
    JOB_UPLOAD,
    JOB_COLLECT,
};

struct job {
    uv_work_t work;
    ef_code_lane *lane;
    enum job_kind kind;
    struct job *next;
    int result;
    ef_error err;
    /* JOB_UPLOAD */
    char *name;
    unsigned char *zip;
    size_t len;
    ef_code_upload_cb done;
    void *user;
    char hex[EF_SHA256_HEX_LEN + 1];
    /* JOB_COLLECT: the codes to remove, decided on the loop thread. */
    char **garbage;
    size_t n_garbage;
    unsigned removed;
};

struct ef_code_lane {
    struct ef_controller *ctl;
    struct job *head, *tail; /* queued, not started */
    struct job *running;
    bool collect_queued;
    bool closed;
    /* Initialised on first use, so that a lane never used on a loop needs no closing. */
    bool retry_open;
    uv_timer_t retry;
    unsigned collections, removed;
    struct ef_name_map held; /* code sha256 -> holds by invocations, as (uintptr_t) */
};

static void start_next(ef_code_lane *lane);

static void job_free(struct job *job)
{
    free(job->name);
    free(job->zip);
    for (size_t i = 0; i < job->n_garbage; i++)
        free(job->garbage[i]);
    free(job->garbage);
    free(job);
}

static void enqueue(ef_code_lane *lane, struct job *job)
{
    job->next = NULL;
    if (lane->tail)
        lane->tail->next = job;
    else
        lane->head = job;
    lane->tail = job;
}

static struct job *dequeue(ef_code_lane *lane)
{
    struct job *job = lane->head;
    if (job) {
        lane->head = job->next;
        if (!lane->head)
            lane->tail = NULL;
        job->next = NULL;
    }
    return job;
}

int ef_code_lane_new(struct ef_controller *ctl, ef_code_lane **ret_lane, ef_error *err)
{
    ef_code_lane *lane = calloc(1, sizeof(*lane));
    if (!lane)
        return ef_error_set(err, -ENOMEM, "out of memory");
    lane->ctl = ctl;
    ef_name_map_init(&lane->held);
    *ret_lane = lane;
    return 0;
}

void ef_code_lane_close(ef_code_lane *lane)
{
    if (!lane || lane->closed)
        return;
    lane->closed = true;
    if (lane->retry_open)
        uv_close((uv_handle_t *)&lane->retry, NULL);
}

void ef_code_lane_free(ef_code_lane *lane)
{
    if (!lane)
        return;
    struct job *job;
    while ((job = dequeue(lane)) != NULL)
        job_free(job);
    ef_name_map_clear(&lane->held);
    free(lane);
}

bool ef_code_lane_busy(const ef_code_lane *lane, const char *name)
{
    if (lane->running && lane->running->kind == JOB_UPLOAD &&
        strcmp(lane->running->name, name) == 0)
        return true;
    for (const struct job *j = lane->head; j; j = j->next)
        if (j->kind == JOB_UPLOAD && strcmp(j->name, name) == 0)
            return true;
    return false;
}

unsigned ef_code_lane_collections(const ef_code_lane *lane)
{
    return lane->collections;
}

unsigned ef_code_lane_removed(const ef_code_lane *lane)
{
    return lane->removed;
}

/* ---- uploads ---- */

static void upload_work(uv_work_t *w)
{
    struct job *job = (struct job *)w;
    job->result = ef_codestore_put(job->lane->ctl->code_root, job->zip, job->len,
                                   &ef_zip_default_limits, job->hex, NULL, &job->err);
}

static void upload_after(uv_work_t *w, int status)
{
    struct job *job = (struct job *)w;
    ef_code_lane *lane = job->lane;
    if (status < 0)
        job->result = ef_error_set(&job->err, -ECANCELED, "storing the code was cancelled: %s",
                                   uv_strerror(status));
    lane->running = NULL;
    job->done(lane->ctl, job->result, &job->err, job->result == 0 ? job->hex : NULL, job->user);
    job_free(job);
    start_next(lane);
}

int ef_code_lane_upload(ef_code_lane *lane, const char *name, unsigned char *zip, size_t len,
                        ef_code_upload_cb done, void *user, ef_error *err)
{
    struct job *job = calloc(1, sizeof(*job));
    if (!job || !(job->name = strdup(name))) {
        free(job);
        free(zip);
        return ef_error_set(err, -ENOMEM, "out of memory");
    }
    job->lane = lane;
    job->kind = JOB_UPLOAD;
    job->zip = zip;
    job->len = len;
    job->done = done;
    job->user = user;
    enqueue(lane, job);
    start_next(lane);
    return 0;
}

/* ---- collection ---- */

struct referenced {
    char **hexes;
    size_t n;
};

/* Drops a code the store refers to from the candidates. */
static int drop_referenced(const char *hex, void *user)
{
    struct referenced *cand = user;
    for (size_t i = 0; i < cand->n; i++) {
        if (cand->hexes[i] && strcmp(cand->hexes[i], hex) == 0) {
            free(cand->hexes[i]);
            cand->hexes[i] = NULL;
        }
    }
    return 0;
}

static void on_retry(uv_timer_t *t)
{
    ef_code_lane_collect(t->data);
}

static void schedule_retry(ef_code_lane *lane)
{
    if (lane->closed)
        return;
    if (!lane->retry_open) {
        if (uv_timer_init(lane->ctl->loop, &lane->retry) < 0)
            return;
        lane->retry.data = lane;
        lane->retry_open = true;
    }
    if (!uv_is_active((uv_handle_t *)&lane->retry))
        uv_timer_start(&lane->retry, on_retry, RETRY_MS, 0);
}

/* Decides, on the loop thread, what a collection removes. Returns the number of codes put in
 * job->garbage (0: nothing to do). */
static size_t choose_garbage(ef_code_lane *lane, struct job *job)
{
    struct ef_controller *ctl = lane->ctl;
    if (lane->closed || ctl->shutting_down)
        return 0;
    /* A container being created already has its code mounted but is not in the pool yet. */
    if (ctl->pending_spawns > 0) {
        schedule_retry(lane);
        return 0;
    }
    struct referenced cand = {0};
    ef_error err = {0};
    if (ef_codestore_list(ctl->code_root, &cand.hexes, &cand.n, &err) < 0) {
        ef_warn("cannot collect unused code: %s", err.msg);
        return 0;
    }
    int r = ef_store_for_each_code(ctl->store, drop_referenced, &cand, &err);
    if (r < 0) {
        ef_warn("cannot collect unused code: %s", err.msg);
        for (size_t i = 0; i < cand.n; i++) {
            free(cand.hexes[i]);
            cand.hexes[i] = NULL;
        }
    }
    size_t n = 0;
    for (size_t i = 0; i < cand.n; i++) {
        if (!cand.hexes[i])
            continue;
        bool in_use = ef_name_map_get(&lane->held, cand.hexes[i]) != NULL;
        for (const struct ef_container *c = ctl->pool.head; c && !in_use; c = c->next)
            in_use = c->key && strstr(c->key, cand.hexes[i]) != NULL;
        if (in_use) {
            ef_debug("keeping unreferenced code %s: a container or an invocation still needs it",
                     cand.hexes[i]);
            free(cand.hexes[i]);
            schedule_retry(lane);
            continue;
        }
        cand.hexes[n++] = cand.hexes[i];
    }
    job->garbage = cand.hexes;
    job->n_garbage = n;
    return n;
}

static void collect_work(uv_work_t *w)
{
    struct job *job = (struct job *)w;
    const char *root = job->lane->ctl->code_root;
    for (size_t i = 0; i < job->n_garbage; i++) {
        ef_error err = {0};
        if (ef_codestore_remove(root, job->garbage[i], &err) == 0) {
            job->removed++;
        } else if (job->result == 0) {
            job->result = err.code;
            job->err = err;
        }
    }
}

static void collect_after(uv_work_t *w, int status)
{
    (void)status;
    struct job *job = (struct job *)w;
    ef_code_lane *lane = job->lane;
    lane->running = NULL;
    lane->collections++;
    lane->removed += job->removed;
    if (job->removed)
        ef_info("removed %u unused code package(s) from the code store", job->removed);
    if (job->result < 0)
        ef_warn("cannot remove unused code: %s", job->err.msg);
    job_free(job);
    start_next(lane);
}

void ef_code_lane_collect(ef_code_lane *lane)
{
    if (lane->closed || lane->collect_queued)
        return;
    struct job *job = calloc(1, sizeof(*job));
    if (!job) {
        ef_warn("cannot collect unused code: out of memory");
        return;
    }
    job->lane = lane;
    job->kind = JOB_COLLECT;
    lane->collect_queued = true;
    enqueue(lane, job);
    start_next(lane);
}

/* ---- the lane ---- */

static void start_next(ef_code_lane *lane)
{
    while (!lane->running && lane->head) {
        struct job *job = dequeue(lane);
        int r;
        if (job->kind == JOB_COLLECT) {
            lane->collect_queued = false;
            if (choose_garbage(lane, job) == 0) {
                lane->collections++;
                job_free(job);
                continue;
            }
            r = uv_queue_work(lane->ctl->loop, &job->work, collect_work, collect_after);
        } else {
            r = uv_queue_work(lane->ctl->loop, &job->work, upload_work, upload_after);
        }
        if (r == 0) {
            lane->running = job;
            break;
        }
        if (job->kind == JOB_UPLOAD) {
            ef_error err = {0};
            ef_error_set(&err, r, "cannot queue work: %s", uv_strerror(r));
            job->done(lane->ctl, r, &err, NULL, job->user);
        }
        job_free(job);
    }
}

int ef_code_lane_hold(ef_code_lane *lane, const char *hex)
{
    if (!lane)
        return 0;
    uintptr_t n = (uintptr_t)ef_name_map_get(&lane->held, hex);
    return ef_name_map_put(&lane->held, hex, (void *)(n + 1));
}

void ef_code_lane_release(ef_code_lane *lane, const char *hex)
{
    if (!lane)
        return;
    uintptr_t n = (uintptr_t)ef_name_map_get(&lane->held, hex);
    if (n > 1)
        ef_name_map_put(&lane->held, hex, (void *)(n - 1)); /* the entry exists: no allocation */
    else if (n == 1)
        ef_name_map_remove(&lane->held, hex);
}
