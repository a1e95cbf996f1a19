/* Line plots through gnuplot (gnuplot.h). */
#include "common/gnuplot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fileio.h"

static sl_status sl_plot_dat(FILE *f, void *ctx) {
    const sl_plot *p = ctx;
    for (int s = 0; s < p->n_series; s++) {
        const sl_plot_series *ser = &p->series[s];
        if (s > 0) fprintf(f, "\n\n");
        fprintf(f, "# %s\n", ser->title);
        for (int i = 0; i < ser->n; i++) {
            if (isfinite(ser->y[i])) {
                fprintf(f, "%.17g %.17g\n", ser->x[i], ser->y[i]);
            } else {
                fprintf(f, "%.17g NaN\n", ser->x[i]);
            }
        }
    }
    return SL_OK;
}

/* gnuplot single-quoted strings end at a quote: titles keep their text without it. */
static void sl_plot_quote(FILE *f, const char *s) {
    fputc('\'', f);
    for (; s && *s; s++)
        fputc(*s == '\'' ? '"' : *s, f);
    fputc('\'', f);
}

static sl_status sl_plot_gp(FILE *f, void *ctx) {
    const sl_plot *p = ctx;
    fprintf(f, "# data: %s.dat\nset terminal pngcairo size 1000,600 noenhanced\n", p->name);
    fprintf(f, "set output '%s.png'\nset title ", p->name);
    sl_plot_quote(f, p->title);
    fprintf(f, "\nset xlabel ");
    sl_plot_quote(f, p->xlabel);
    fprintf(f, "\nset ylabel ");
    sl_plot_quote(f, p->ylabel);
    fprintf(f, "\nset grid\nset key outside right top\nset datafile missing 'NaN'\n");
    if (p->log_x) fprintf(f, "set logscale x 2\n");
    if (p->log_y) fprintf(f, "set logscale y 10\n");
    fprintf(f, "plot \\\n");
    for (int s = 0; s < p->n_series; s++) {
        fprintf(f, "  '%s.dat' index %d using 1:2 with linespoints pt 7 ps 0.5 title ", p->name, s);
        sl_plot_quote(f, p->series[s].title);
        fprintf(f, "%s\n", s + 1 < p->n_series ? ", \\" : "");
    }
    return SL_OK;
}

sl_status sl_plot_write(const char *dir, const sl_plot *plot) {
    if (plot->n_series < 1) {
        return sl_error_set(SL_ERR_INVALID_ARG, "plot %s: no series to plot", plot->name);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.dat", dir, plot->name);
    SL_TRY(sl_file_write_atomic(path, sl_plot_dat, (void *)plot));
    snprintf(path, sizeof path, "%s/%s.gp", dir, plot->name);
    return sl_file_write_atomic(path, sl_plot_gp, (void *)plot);
}

bool sl_gnuplot_available(void) {
    const char *path = getenv("PATH");
    if (!path) return false;
    char buf[4096];
    for (const char *p = path; *p;) {
        const char *end = strchr(p, ':');
        const size_t n = end ? (size_t)(end - p) : strlen(p);
        snprintf(buf, sizeof buf, "%.*s/gnuplot", (int)n, n ? p : ".");
        if (access(buf, X_OK) == 0) return true;
        if (!end) break;
        p = end + 1;
    }
    return false;
}

sl_status sl_gnuplot_render(const char *dir, const char *script) {
    fflush(NULL);
    const pid_t pid = fork();
    if (pid < 0) return sl_error_set(SL_ERR_IO, "gnuplot %s/%s: fork failed", dir, script);
    if (pid == 0) {
        if (chdir(dir) != 0) _exit(126);
        execlp("gnuplot", "gnuplot", script, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) < 0) {
        return sl_error_set(SL_ERR_IO, "gnuplot %s/%s: waiting for gnuplot failed", dir, script);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return sl_error_set(SL_ERR_IO,
                            "gnuplot %s/%s failed with status %d (127: gnuplot not found, 126: "
                            "cannot enter the directory); run it by hand there to see why",
                            dir, script, code);
    }
    return SL_OK;
}
