/* T5 availability (peer.h). The peer script would live at bench/peer/ in the source tree; none
 * is installed with shardlab yet, so T5 reports which prerequisite is missing. */
#include "conformance/peer.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

/* Exit status of `python3 -c "import torch"`, silenced; 127 when python3 cannot run. */
static int sl_conf_python_torch(void) {
    fflush(NULL);
    const pid_t pid = fork();
    if (pid < 0) return 127;
    if (pid == 0) {
        const int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
            dup2(null, STDERR_FILENO);
        }
        execlp("python3", "python3", "-c", "import torch", (char *)NULL);
        _exit(127);
    }
    int raw = 0;
    if (waitpid(pid, &raw, 0) != pid) return 127;
    return WIFEXITED(raw) ? WEXITSTATUS(raw) : 127;
}

void sl_conf_peer_check(sl_conf_check *c) {
    c->verdict = SL_CONF_SKIP;
    const int st = sl_conf_python_torch();
    if (st == 127) {
        snprintf(c->detail, sizeof c->detail,
                 "python3 is not installed; T5 compares the reference with PyTorch and needs "
                 "python3 with torch");
    } else if (st != 0) {
        snprintf(c->detail, sizeof c->detail,
                 "python3 cannot import torch (pip install torch to enable T5)");
    } else {
        snprintf(c->detail, sizeof c->detail,
                 "torch is importable, but this shardlab has no PyTorch peer script to run the "
                 "same weights and batch");
    }
}
