/* `shardlab launch`: the pieces of the command (cmd_launch.c drives them). */
#ifndef SHARDLAB_CLI_LAUNCH_H
#define SHARDLAB_CLI_LAUNCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "shardlab/config.h"
#include "shardlab/status.h"

/* A growable NULL-terminated vector of owned strings (an argv or an environment). */
typedef struct sl_strv {
    char **v;
    size_t n, cap;
} sl_strv;

sl_status sl_strv_push(sl_strv *s, const char *text);
sl_status sl_strv_pushf(sl_strv *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sl_strv_free(sl_strv *s);
/* Replaces the entry "NAME=..." of an environment vector, or appends "NAME=value". */
sl_status sl_strv_setenv(sl_strv *s, const char *name, const char *value);

/* What the command line asked for, validated. */
typedef struct sl_launch {
    sl_config *cfg;       /* flags, SHARDLAB_CONFIG_* variables and config files */
    int world;            /* W = num_processes */
    int machines;         /* M = num_machines */
    int machine_rank;     /* -1 when not given */
    const char *main_ip;  /* NULL when not given; the strings point into cfg */
    int main_port;        /* 0 when not given */
    const char *hostfile; /* NULL when not given */
    bool debug;           /* check collective signatures (SHARDLAB_COMM_DEBUG=1) */
    bool dry_run;
    int max_restarts; /* --max_restarts: times a failed job is started again */
    char **program;   /* the program and its arguments, NULL-terminated */
    char self[4096];  /* this executable: each rank runs it as the rank wrapper */
    sl_strv hosts;    /* multi-machine without a hostfile: one address per machine */
} sl_launch;

/* launch_command.c: the environment added for every rank ("NAME=value"; SHARDLAB_RESTART_COUNT=0
 * and SHARDLAB_MAX_RESTARTS among them) and mpirun's argv. */
sl_status sl_launch_build(const sl_launch *l, sl_strv *env, sl_strv *argv);
/* The line --dry_run prints: the added environment as assignments, then the command, each
 * word shell-quoted. */
void sl_launch_print_command(const sl_strv *env, const sl_strv *argv, FILE *f);
/* The program must exist and be executable: a path, or a name found on $PATH. */
sl_status sl_launch_check_program(const char *program);
/* The full path of `name` on $PATH (or name itself when it holds a '/'); "" when not found. */
void sl_launch_which(const char *name, char *out, size_t cap);

/* launch_hostfile.c: checks an Open MPI hostfile ("host [slots=N] [max_slots=N]", '#' comments);
 * *n_hosts receives the number of hosts it lists. */
sl_status sl_launch_check_hostfile(const char *path, int *n_hosts);

/* launch_exec.c: runs argv with env added, passing SIGINT, SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2
 * on to it; *exit_status is its exit status (128 + signal when it was killed, or when the
 * launcher was told to stop by a signal, which *stopped_by names; 0 otherwise). */
sl_status sl_launch_exec(const sl_strv *env, const sl_strv *argv, int *exit_status,
                         int *stopped_by);
/* The per-rank wrapper mpirun starts: runs the program, names the rank and the signal when the
 * program dies, and returns the program's exit status (128 + signal). A failure the wrapper did
 * not cause itself is also appended to the file $SHARDLAB_LAUNCH_FAILURES names, when it exists on
 * the rank's machine, as one line "RANK PID HOST signal|exit VALUE". */
int sl_launch_rank_main(char **program);
#define SL_LAUNCH_FAILURES_ENV "SHARDLAB_LAUNCH_FAILURES"
/* "SIGKILL", "SIGSEGV", ...; "signal" for one without a short name here. */
const char *sl_launch_signal_name(int sig);

/* launch_restart.c: runs the job with sl_launch_exec and, while it fails (a rank killed or
 * exiting non-zero) and restarts are left, runs it again, torchrun-style: the whole job, with
 * SHARDLAB_RESTART_COUNT set to the restart's number. Each failure is logged with the rank that
 * failed first, how, and what happens next. A stop requested by a signal is never restarted.
 * *exit_status and *stopped_by are the last attempt's (sl_launch_exec). */
sl_status sl_launch_supervise(const sl_launch *l, sl_strv *env, const sl_strv *argv,
                              int *exit_status, int *stopped_by);

/* launch_rendezvous.c: multi-machine launch without a hostfile, Accelerate style: every machine
 * runs the same command with its own --machine_rank. Machine 0 listens on --main_process_port,
 * takes the address each other machine connects from as its host (l->hosts, in machine order),
 * runs the whole job through mpirun and sends its exit status back; the other machines register
 * and return that status. */
typedef struct sl_rendezvous {
    int *peer_fds; /* [machines - 1], indexed by machine rank - 1 */
    int n_peers;
} sl_rendezvous;

sl_status sl_launch_rendezvous_main(sl_launch *l, sl_rendezvous *rv);
void sl_launch_rendezvous_finish(sl_rendezvous *rv, int exit_status);
sl_status sl_launch_rendezvous_join(const sl_launch *l, int *exit_status);

#endif
