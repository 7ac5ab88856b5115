/* Scope-bound cleanup, in the manner of crun and bubblewrap.
 *
 *   cleanup_free char *s = NULL;      freed with free() when it goes out of scope
 *   cleanup_close int fd = -1;        closed when >= 0
 *   return steal_pointer(&s);         hands ownership on; the variable becomes NULL
 */
#pragma once

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void ef_cleanup_freep(void *p)
{
    void **pp = (void **)p;
    free(*pp);
}

static inline void ef_cleanup_closep(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}

static inline void ef_cleanup_fclosep(FILE **f)
{
    if (*f)
        fclose(*f);
}

static inline void ef_cleanup_cjsonp(cJSON **j)
{
    if (*j)
        cJSON_Delete(*j);
}

#define cleanup_free   __attribute__((cleanup(ef_cleanup_freep)))
#define cleanup_close  __attribute__((cleanup(ef_cleanup_closep)))
#define cleanup_fclose __attribute__((cleanup(ef_cleanup_fclosep)))
#define cleanup_cjson  __attribute__((cleanup(ef_cleanup_cjsonp)))

static inline void *ef_steal_pointer(void *pp)
{
    void **p = (void **)pp;
    void *v = *p;
    *p = NULL;
    return v;
}
#define steal_pointer(pp) ef_steal_pointer(pp)

static inline int ef_steal_fd(int *fd)
{
    int v = *fd;
    *fd = -1;
    return v;
}
#define steal_fd(fdp) ef_steal_fd(fdp)

#define EF_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
