/* T5 (DESIGN.md §9): the reference against PyTorch on the same weights and batch. It needs
 * python3 with torch and a peer script; without them the check is a reported skip. */
#ifndef SHARDLAB_CONFORMANCE_PEER_H
#define SHARDLAB_CONFORMANCE_PEER_H

#include "conformance/check.h"

/* Fills c: SKIP with the reason (python3 missing, torch not importable, no peer script), or the
 * verdict of the comparison. */
void sl_conf_peer_check(sl_conf_check *c);

#endif
