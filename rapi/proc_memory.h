/* The runtime's peak memory, for the "Max Memory Used" of Lambda's REPORT line.
 *
 * Inside the container the runner sees no cgroup file system, so it reports the runtime
 * process's own high-water mark of resident memory (VmHWM in /proc/<pid>/status). Processes the
 * runtime starts are not counted. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/* Finds "VmHWM:  <n> kB" in the text of a /proc/<pid>/status file. Returns true and the value
 * in kB, or false when the line is missing or malformed (a zombie has none). */
bool ef_parse_vmhwm_kb(const char *status_text, long *ret_kb);

/* Reads the VmHWM through `fd`, an open /proc/<pid>/status (of a process in another pid
 * namespace, say); false when it cannot be read (the process is gone). */
bool ef_proc_fd_peak_rss_kb(int fd, long *ret_kb);

/* Reads the VmHWM of `pid`; false when it cannot be read (the process is gone). */
bool ef_proc_peak_rss_kb(pid_t pid, long *ret_kb);
