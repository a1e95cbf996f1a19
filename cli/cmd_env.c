/* shardlab env — the block to paste into a bug report: how shardlab was built, what it finds at
 * run time (MPI, BLAS, CUDA and NCCL when present, loaded with dlopen so that none is required),
 * the CPU and its SIMD features, the thread settings, and the configuration the flags and files
 * given to it resolve to. */
#include <cblas.h>
#include <dlfcn.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cli/commands.h"
#include "common/fileio.h"
#include "common/json.h"
#include "shardlab/config.h"

static const char *const sl_env_usage =
    "usage: shardlab env [--config_file F] [--deepspeed_config_file F] [plan flags]\n"
    "Prints the compiler, MPI, BLAS, CUDA and NCCL versions (when present), the CPU model and\n"
    "SIMD features, the thread settings, and the configuration the given flags and files resolve\n"
    "to, each value with its source. Paste it into a bug report.\n";

static void sl_env_os(void) {
    struct utsname u;
    if (uname(&u) == 0) printf("os:          %s %s %s\n", u.sysname, u.release, u.machine);
#if defined(__VERSION__)
    printf("compiler:    %s (C %ld)\n", __VERSION__, (long)__STDC_VERSION__);
#endif
}

static void sl_env_mpi(void) {
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    /* allowed before MPI_Init (MPI-3 §8.1.1) */
    if (MPI_Get_library_version(version, &len) == MPI_SUCCESS) {
        char *nl = strchr(version, '\n');
        if (nl) *nl = '\0';
        char *comma = strchr(version, ',');
        if (comma) *comma = '\0'; /* Open MPI appends repository and release date */
        printf("mpi:         %s (MPI %d.%d)\n", version, MPI_VERSION, MPI_SUBVERSION);
    }
}

static void sl_env_blas(void) {
    printf("blas:        %s, core %s, %d threads\n", openblas_get_config(), openblas_get_corename(),
           openblas_get_num_threads());
}

/* The first library of `names` dlopen finds, or NULL. */
static void *sl_env_dlopen(const char *const *names, const char **found) {
    for (; *names; names++) {
        void *h = dlopen(*names, RTLD_NOW | RTLD_LOCAL);
        if (h) {
            *found = *names;
            return h;
        }
    }
    return NULL;
}

/* CUDA runtime and driver (cudaRuntimeGetVersion, cuDriverGetVersion, cuDeviceGetName), then
 * the toolkit's version.json. Codes are 1000 x major + 10 x minor. */
static void sl_env_cuda(void) {
    static const char *const runtimes[] = {"libcudart.so", "libcudart.so.13", "libcudart.so.12",
                                           "libcudart.so.11.0", NULL};
    static const char *const drivers[] = {"libcuda.so.1", "libcuda.so", NULL};
    const char *name = NULL;
    void *rt = sl_env_dlopen(runtimes, &name);
    if (rt) {
        int (*get_version)(int *) = NULL;
        *(void **)(&get_version) = dlsym(rt, "cudaRuntimeGetVersion");
        int v = 0;
        if (get_version && get_version(&v) == 0) {
            printf("cuda:        runtime %d.%d (%s)\n", v / 1000, (v % 1000) / 10, name);
        }
        dlclose(rt);
    }
    void *drv = sl_env_dlopen(drivers, &name);
    if (drv) {
        int (*init)(unsigned) = NULL, (*driver_version)(int *) = NULL, (*count)(int *) = NULL;
        int (*get)(int *, int) = NULL, (*dev_name)(char *, int, int) = NULL;
        *(void **)(&init) = dlsym(drv, "cuInit");
        *(void **)(&driver_version) = dlsym(drv, "cuDriverGetVersion");
        *(void **)(&count) = dlsym(drv, "cuDeviceGetCount");
        *(void **)(&get) = dlsym(drv, "cuDeviceGet");
        *(void **)(&dev_name) = dlsym(drv, "cuDeviceGetName");
        int v = 0, n = 0;
        if (driver_version && driver_version(&v) == 0) {
            printf("cuda driver: %d.%d\n", v / 1000, (v % 1000) / 10);
        }
        if (init && count && get && dev_name && init(0) == 0 && count(&n) == 0) {
            for (int i = 0; i < n; i++) {
                int dev = 0;
                char gpu[256] = "?";
                if (get(&dev, i) == 0) dev_name(gpu, (int)sizeof gpu, dev);
                printf("gpu %d:       %s\n", i, gpu);
            }
        }
        dlclose(drv);
    }
    sl_json *doc = NULL;
    const bool toolkit = sl_json_parse_file("/usr/local/cuda/version.json", &doc) == SL_OK;
    if (toolkit) {
        const sl_json *cuda = sl_json_get(sl_json_get(doc, "cuda"), "version");
        if (cuda) printf("cuda toolkit: %s (/usr/local/cuda)\n", sl_json_string(cuda));
        sl_json_free(doc);
    }
    sl_error_clear();
    if (!rt && !drv && !toolkit) printf("cuda:        not found\n");
}

static void sl_env_nccl(void) {
    static const char *const names[] = {"libnccl.so.2", "libnccl.so", NULL};
    const char *name = NULL;
    void *h = sl_env_dlopen(names, &name);
    if (!h) {
        printf("nccl:        not found\n");
        return;
    }
    int (*get_version)(int *) = NULL;
    *(void **)(&get_version) = dlsym(h, "ncclGetVersion");
    int v = 0;
    /* NCCL >= 2.9 encodes major x 10000 + minor x 100 + patch */
    if (get_version && get_version(&v) == 0) {
        printf("nccl:        %d.%d.%d (%s)\n", v / 10000, (v % 10000) / 100, v % 100, name);
    }
    dlclose(h);
}

/* "model name" (x86) or "CPU part"/"Hardware" (ARM), and the SIMD features the kernels use. */
static void sl_env_cpu(void) {
    static const char *const simd[] = {
        "sse4_2",   "avx",      "avx2",        "fma",         "f16c",     "avx512f",
        "avx512bw", "avx512vl", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile",
        "asimd",    "asimdhp",  "sve",         "sve2",        "bf16",     NULL};
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[8192], model[256] = "unknown", found[512] = "";
    int cpus = 0;
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!colon) continue;
        char *value = colon + 1 + (colon[1] == ' ');
        value[strcspn(value, "\n")] = '\0';
        if (!strncmp(line, "processor", 9)) cpus++;
        if (!strncmp(line, "model name", 10) || !strncmp(line, "Hardware", 8)) {
            snprintf(model, sizeof model, "%s", value);
        }
        if (found[0] || (strncmp(line, "flags", 5) && strncmp(line, "Features", 8))) continue;
        for (const char *const *s = simd; *s; s++) {
            char word[64];
            snprintf(word, sizeof word, " %s ", *s);
            char padded[8200];
            snprintf(padded, sizeof padded, " %s ", value);
            if (strstr(padded, word)) {
                const size_t n = strlen(found);
                snprintf(found + n, sizeof found - n, "%s%s", n ? " " : "", *s);
            }
        }
    }
    if (f) fclose(f);
    printf("cpu:         %s (%d logical CPUs listed)\n", model, cpus);
    printf("simd:        %s\n", found[0] ? found : "none of the checked features");
}

static void sl_env_threads(void) {
    static const char *const vars[] = {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                       "OMP_PROC_BIND",   "CUDA_VISIBLE_DEVICES", NULL};
    printf("nproc:       %ld online, %ld configured\n", sysconf(_SC_NPROCESSORS_ONLN),
           sysconf(_SC_NPROCESSORS_CONF));
    for (const char *const *v = vars; *v; v++) {
        const char *value = getenv(*v);
        printf("%-22s %s\n", *v, value ? value : "(unset)");
    }
}

static void sl_env_config(const sl_config *cfg) {
    if (sl_config_size(cfg) == 0) return;
    printf("configuration (value, source):\n");
    for (size_t i = 0; i < sl_config_size(cfg); i++) {
        const char *value;
        const sl_source *src;
        const char *key = sl_config_entry(cfg, i, &value, &src);
        char where[512];
        sl_source_describe(src, where, sizeof where);
        printf("  %-36s %-16s %s\n", key, value, where);
    }
}

int sl_cmd_env(int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(sl_env_usage, stdout);
            return 0;
        }
    }
    sl_config *cfg = NULL;
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int n_rest = 0;
    sl_status st =
        rest ? sl_config_create(&cfg) : sl_error_set(SL_ERR_OOM, "out of memory parsing arguments");
    if (st == SL_OK) st = sl_config_parse_args(cfg, argc, argv, rest, &n_rest);
    if (st == SL_OK && n_rest > 0) st = sl_config_unknown_arg("env", rest[0], NULL);
    free(rest);
    if (st == SL_OK) {
        printf("Copy-and-paste the text below in your bug report.\n\n");
        sl_env_os();
        sl_env_mpi();
        sl_env_blas();
        sl_env_cuda();
        sl_env_nccl();
        sl_env_cpu();
        sl_env_threads();
        sl_env_config(cfg);
    }
    sl_config_destroy(cfg);
    return sl_cli_report(st);
}
