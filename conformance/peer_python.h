/* The Python side of shardlab's PyTorch peers (bench/peer/): finding an interpreter whose
 * `import torch` works, finding a peer script, and running it with a time limit. Used by
 * `shardlab bench`'s eager peer (gpt2_peer.py) and by conformance T5 (peer_check.py). */
#ifndef SHARDLAB_CONFORMANCE_PEER_PYTHON_H
#define SHARDLAB_CONFORMANCE_PEER_PYTHON_H

#include <stdbool.h>
#include <stddef.h>

/* $SHARDLAB_PYTHON, else python3 on PATH, else Debian's /usr/bin/python3 (where
 * `apt-get install python3-torch` puts torch even when PATH's python3 is another one): the first
 * that imports torch, into python. An explicit $SHARDLAB_PYTHON is not second-guessed. False
 * when none does, with the reason (one sentence saying how to fix it) in why. */
bool sl_peer_python_find(char *python, size_t cap, char *why, size_t why_cap);

/* The peer script bench/peer/<file>: $<env> when env names a set variable (used as given), else
 * bench/peer/<file> beside the build directory of the shardlab binary (sl_conf_shardlab_bin) or
 * of this executable (build/shardlab -> bench/peer/), else under the current directory. False
 * when none is a file; path then holds the last place looked at. */
bool sl_peer_script_find(const char *file, const char *env, char *path, size_t cap);

/* Runs argv (argv[0] searched in PATH) in its own process group. log_path: NULL inherits stdout
 * and stderr, else both go to that file (truncated). After timeout_s seconds (0: no limit) the
 * group is killed and *timed_out set. Returns the exit status (128 + signal when killed), -1
 * when the process cannot start. */
int sl_peer_spawn(char *const *argv, const char *log_path, double timeout_s, bool *timed_out);

#endif
