/* The runner's two commands, called by main() with the arguments after the command name. */
#pragma once

/* `easyfaas-runner prepare`: installs the runner and the bundled runtimes into a directory
 * (the shared runtime volume). Returns the process exit code. */
int ef_runner_prepare(int argc, char **argv, int start);

/* `easyfaas-runner init`: PID 1 of a user container. Returns the process exit code. */
int ef_runner_init(int argc, char **argv, int start);
