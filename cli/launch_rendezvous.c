/* Multi-machine launch with Accelerate's flags (--num_machines M --machine_rank R
 * --main_process_ip IP --main_process_port P) on top of mpirun, which starts every rank of a job
 * from one machine. Machine 0 listens on P; each other machine connects, says who it is, and
 * waits; the address it connected from becomes its host in mpirun's --host list (mpirun reaches
 * it over ssh, as with a hostfile). When the job ends machine 0 sends every machine the exit
 * status, so `launch` returns the same status everywhere.
 *
 * Protocol (one line each): machine R -> 0 "shardlab-launch 1 R M W"; 0 -> R "ok" or
 * "error MESSAGE"; at the end 0 -> R "exit STATUS". */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli/launch.h"

#define SL_RDV_DEFAULT_TIMEOUT_S 300

static double sl_rdv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* $SHARDLAB_LAUNCH_TIMEOUT: how long machines wait for each other. */
static double sl_rdv_timeout(void) {
    const char *t = getenv("SHARDLAB_LAUNCH_TIMEOUT");
    const double v = t ? strtod(t, NULL) : 0.0;
    return v > 0.0 ? v : SL_RDV_DEFAULT_TIMEOUT_S;
}

/* Reads one '\n'-terminated line (without it) within `timeout_s` (< 0: no limit). */
static int sl_rdv_read_line(int fd, char *buf, size_t cap, double timeout_s) {
    size_t n = 0;
    const double deadline = sl_rdv_now() + timeout_s;
    while (n + 1 < cap) {
        if (timeout_s >= 0.0) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            const double left = deadline - sl_rdv_now();
            const int ready = left > 0.0 ? poll(&p, 1, (int)(left * 1000.0) + 1) : 0;
            if (ready < 0 && errno == EINTR) continue;
            if (ready <= 0) return -1;
        }
        char c;
        const ssize_t got = read(fd, &c, 1);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return -1;
        if (c == '\n') break;
        buf[n++] = c;
    }
    buf[n] = '\0';
    return 0;
}

static void sl_rdv_send(int fd, const char *line) {
    const size_t len = strlen(line);
    for (size_t off = 0; off < len;) {
        const ssize_t put = write(fd, line + off, len - off);
        if (put < 0 && errno == EINTR) continue;
        if (put <= 0) return;
        off += (size_t)put;
    }
}

static sl_status sl_rdv_listen(int port, int *out) {
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {
        .ai_family = AF_INET, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    const int gai = getaddrinfo(NULL, service, &hints, &ai);
    if (gai != 0) {
        return sl_error_set(SL_ERR_IO, "launch: cannot listen on port %d: %s", port,
                            gai_strerror(gai));
    }
    const int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    const int one = 1;
    /* lets a new launch reuse a port whose last connections linger in TIME_WAIT; a port another
     * program listens on still fails below */
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const int err = fd < 0 ? errno : bind(fd, ai->ai_addr, ai->ai_addrlen) ? errno : 0;
    freeaddrinfo(ai);
    if (err == EADDRINUSE) {
        if (fd >= 0) close(fd);
        return sl_error_set(SL_ERR_CONFIG,
                            "launch: --main_process_port %d is busy on this machine (another "
                            "program is listening on it); pick a free port for every machine",
                            port);
    }
    if (err != 0 || listen(fd, 64) != 0) {
        const int e = err ? err : errno;
        if (fd >= 0) close(fd);
        return sl_error_set(SL_ERR_IO, "launch: cannot listen on port %d: %s", port, strerror(e));
    }
    *out = fd;
    return SL_OK;
}

/* The address a peer connected from, as mpirun's --host wants it. */
static void sl_rdv_peer_address(int fd, char *buf, size_t cap) {
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    snprintf(buf, cap, "?");
    if (getpeername(fd, (struct sockaddr *)&sa, &len) == 0 && sa.sin_family == AF_INET) {
        inet_ntop(AF_INET, &sa.sin_addr, buf, (socklen_t)cap);
    }
}

/* Reads and checks one machine's hello; on success stores its fd and address. */
static sl_status sl_rdv_accept_one(sl_launch *l, sl_rendezvous *rv, int fd, char **addrs) {
    char line[256];
    int ver = 0, r = -1, m = 0, w = 0;
    if (sl_rdv_read_line(fd, line, sizeof line, 10.0) != 0 ||
        sscanf(line, "shardlab-launch %d %d %d %d", &ver, &r, &m, &w) != 4 || ver != 1) {
        close(fd); /* not a shardlab launcher (a port scan, another program): ignore it */
        return SL_OK;
    }
    char err[512] = "";
    if (m != l->machines || w != l->world) {
        snprintf(err, sizeof err,
                 "machine %d was started with num_machines = %d and num_processes = %d, machine 0 "
                 "with %d and %d; start every machine with the same flags",
                 r, m, w, l->machines, l->world);
    } else if (r < 1 || r >= l->machines || rv->peer_fds[r - 1] >= 0) {
        snprintf(err, sizeof err,
                 "machine_rank %d is %s; each of machines 1..%d must join exactly once", r,
                 r < 1 || r >= l->machines ? "out of range" : "taken twice", l->machines - 1);
    }
    if (err[0]) {
        char reply[600];
        snprintf(reply, sizeof reply, "error %s\n", err);
        sl_rdv_send(fd, reply);
        close(fd);
        return sl_error_set(SL_ERR_CONFIG, "launch: %s", err);
    }
    char addr[64];
    sl_rdv_peer_address(fd, addr, sizeof addr);
    addrs[r] = strdup(addr);
    rv->peer_fds[r - 1] = fd;
    sl_rdv_send(fd, "ok\n");
    return addrs[r] ? SL_OK : sl_error_set(SL_ERR_OOM, "out of memory in the launch rendezvous");
}

sl_status sl_launch_rendezvous_main(sl_launch *l, sl_rendezvous *rv) {
    rv->n_peers = l->machines - 1;
    rv->peer_fds = malloc((size_t)rv->n_peers * sizeof *rv->peer_fds);
    char **addrs = calloc((size_t)l->machines, sizeof *addrs);
    if (!rv->peer_fds || !addrs) {
        free(addrs);
        return sl_error_set(SL_ERR_OOM, "out of memory in the launch rendezvous");
    }
    for (int i = 0; i < rv->n_peers; i++)
        rv->peer_fds[i] = -1;
    int lfd = -1;
    sl_status st = sl_rdv_listen(l->main_port, &lfd);
    const double timeout = sl_rdv_timeout(), deadline = sl_rdv_now() + timeout;
    for (int joined = 0; st == SL_OK && joined < rv->n_peers;) {
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        const double left = deadline - sl_rdv_now();
        const int ready = left > 0.0 ? poll(&p, 1, (int)(left * 1000.0) + 1) : 0;
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) {
            st = sl_error_set(SL_ERR_IO,
                              "launch: waited %g s ($SHARDLAB_LAUNCH_TIMEOUT) on port %d for "
                              "machines 1..%d, but only %d joined; run the same launch command on "
                              "every machine with its --machine_rank",
                              timeout, l->main_port, rv->n_peers, joined);
            break;
        }
        const int fd = accept(lfd, NULL, NULL);
        if (fd < 0) continue;
        st = sl_rdv_accept_one(l, rv, fd, addrs);
        joined = 0;
        for (int i = 0; i < rv->n_peers; i++)
            joined += rv->peer_fds[i] >= 0;
    }
    if (lfd >= 0) close(lfd);
    if (st == SL_OK) st = sl_strv_push(&l->hosts, l->main_ip);
    for (int r = 1; st == SL_OK && r < l->machines; r++)
        st = sl_strv_push(&l->hosts, addrs[r]);
    for (int r = 0; r < l->machines; r++)
        free(addrs[r]);
    free(addrs);
    if (st != SL_OK) sl_launch_rendezvous_finish(rv, 1);
    return st;
}

void sl_launch_rendezvous_finish(sl_rendezvous *rv, int exit_status) {
    char line[32];
    snprintf(line, sizeof line, "exit %d\n", exit_status);
    for (int i = 0; i < rv->n_peers; i++) {
        if (rv->peer_fds[i] < 0) continue;
        sl_rdv_send(rv->peer_fds[i], line);
        close(rv->peer_fds[i]);
    }
    free(rv->peer_fds);
    *rv = (sl_rendezvous){0};
}

static int sl_rdv_connect(const char *ip, int port) {
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(ip, service, &hints, &ai) != 0) return -1;
    int fd = -1;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    return fd;
}

sl_status sl_launch_rendezvous_join(const sl_launch *l, int *exit_status) {
    const double timeout = sl_rdv_timeout(), deadline = sl_rdv_now() + timeout;
    int fd = -1;
    while ((fd = sl_rdv_connect(l->main_ip, l->main_port)) < 0) {
        if (sl_rdv_now() > deadline) {
            return sl_error_set(SL_ERR_IO,
                                "launch: machine %d could not reach machine 0 at %s:%d within %g s "
                                "($SHARDLAB_LAUNCH_TIMEOUT); start launch on machine 0 and check "
                                "--main_process_ip and --main_process_port",
                                l->machine_rank, l->main_ip, l->main_port, timeout);
        }
        const struct timespec pause = {0, 200L * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    char line[600];
    snprintf(line, sizeof line, "shardlab-launch 1 %d %d %d\n", l->machine_rank, l->machines,
             l->world);
    sl_rdv_send(fd, line);
    sl_status st = SL_OK;
    if (sl_rdv_read_line(fd, line, sizeof line, timeout) != 0) {
        st = sl_error_set(SL_ERR_IO, "launch: machine 0 at %s:%d did not answer machine %d",
                          l->main_ip, l->main_port, l->machine_rank);
    } else if (!strncmp(line, "error ", 6)) {
        st = sl_error_set(SL_ERR_CONFIG, "launch: machine 0 refused machine %d: %s",
                          l->machine_rank, line + 6);
    } else if (sl_rdv_read_line(fd, line, sizeof line, -1.0) != 0 ||
               sscanf(line, "exit %d", exit_status) != 1) {
        st = sl_error_set(SL_ERR_IO,
                          "launch: machine 0 closed the connection before the job ended (it "
                          "failed or was interrupted)");
    }
    close(fd);
    return st;
}
