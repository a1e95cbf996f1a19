/* Where the binaries under test are (support.h). */
#include "tests/support/support.h"

#include <stdlib.h>
#include <unistd.h>

char *sl_ts_shardlab_bin(void) {
    static char fallback[] = SL_BINARY_DIR "/shardlab";
    char *b = getenv("SHARDLAB_BIN");
    return b && *b ? b : fallback;
}

char *sl_ts_self(void) {
    static char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    return self;
}
