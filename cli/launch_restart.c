/* `launch --max_restarts N`: when the job fails, start the whole job again, as torchrun's elastic
 * agent does (its --max_restarts, which Accelerate passes on). The program resumes by itself
 * (`shardlab train --resume_from_checkpoint latest`); SHARDLAB_RESTART_COUNT tells it which start
 * this is.
 *
 * Ending the other ranks is mpirun's part, measured with Open MPI 4.1: a rank killed by a signal,
 * or whose wrapper exits non-zero, ends every other rank within about a second. What mpirun
 * cannot see is a rank that fails alone and then waits in MPI_Finalize for the others, which wait
 * for it in turn; such a rank must end the job with sl_comm_abort (comm.h).
 *
 * Which rank failed first comes from the rank wrappers (launch_exec.c): each appends one line to
 * a file the launcher creates for the attempt. Ranks on other machines cannot reach the file;
 * their wrappers' own messages, forwarded by mpirun, name them. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/launch.h"

/* What the first line of the failures file says, as a phrase ("rank 1 (pid 42 on node3) was
 * killed by signal 9 (SIGKILL)"); how mpirun ended when no rank recorded anything. */
static void sl_restart_describe(FILE *f, int exit_status, char *out, size_t cap) {
    char rank[64], host[256], kind[16];
    int pid = 0, value = 0;
    if (f && fseek(f, 0, SEEK_SET) == 0 &&
        fscanf(f, "%63s %d %255s %15s %d", rank, &pid, host, kind, &value) == 5) {
        if (!strcmp(kind, "signal")) {
            snprintf(out, cap, "rank %s (pid %d on %s) was killed by signal %d (%s)", rank, pid,
                     host, value, sl_launch_signal_name(value));
        } else {
            snprintf(out, cap, "rank %s (pid %d on %s) exited with status %d", rank, pid, host,
                     value);
        }
        return;
    }
    snprintf(out, cap,
             "no rank on this machine reported a failure; mpirun ended with exit status %d (see "
             "the messages above)",
             exit_status);
}

/* The failures file of this launch, empty at the start of every attempt. */
static sl_status sl_restart_open_record(char *path, size_t cap, FILE **out) {
    const char *tmp = getenv("TMPDIR");
    snprintf(path, cap, "%s/shardlab-launch-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    const int fd = mkstemp(path);
    if (fd < 0) {
        return sl_error_set(SL_ERR_IO,
                            "launch: cannot create the file ranks report failures in (%s): %s; "
                            "set TMPDIR to a writable directory",
                            path, strerror(errno));
    }
    *out = fdopen(fd, "r+");
    if (!*out) {
        close(fd);
        unlink(path);
        return sl_error_set(SL_ERR_IO, "launch: cannot open %s: %s", path, strerror(errno));
    }
    return SL_OK;
}

sl_status sl_launch_supervise(const sl_launch *l, sl_strv *env, const sl_strv *argv,
                              int *exit_status, int *stopped_by) {
    char path[4096];
    FILE *record = NULL;
    SL_TRY(sl_restart_open_record(path, sizeof path, &record));
    sl_status st = sl_strv_setenv(env, SL_LAUNCH_FAILURES_ENV, path);
    for (int attempt = 0; st == SL_OK; attempt++) {
        char count[16];
        snprintf(count, sizeof count, "%d", attempt);
        st = sl_strv_setenv(env, "SHARDLAB_RESTART_COUNT", count);
        if (st == SL_OK && ftruncate(fileno(record), 0) != 0) {
            st = sl_error_set(SL_ERR_IO, "launch: cannot empty %s: %s", path, strerror(errno));
        }
        if (st == SL_OK) st = sl_launch_exec(env, argv, exit_status, stopped_by);
        if (st != SL_OK || *exit_status == 0 || *stopped_by || l->max_restarts == 0) break;
        char what[512];
        sl_restart_describe(record, *exit_status, what, sizeof what);
        if (attempt == l->max_restarts) {
            fprintf(stderr,
                    "shardlab launch: the job failed: %s; no restarts left (--max_restarts "
                    "%d)\n",
                    what, l->max_restarts);
            break;
        }
        fprintf(stderr,
                "shardlab launch: the job failed: %s; restart %d of %d "
                "(SHARDLAB_RESTART_COUNT=%d)\n",
                what, attempt + 1, l->max_restarts, attempt + 1);
    }
    fclose(record);
    unlink(path);
    return st;
}
