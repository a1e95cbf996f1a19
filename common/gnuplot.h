/* Line plots through gnuplot, shared by the reports (the PNGs under reports/). A plot is two files
 * written atomically beside each other — NAME.dat (one block per series: "x y" lines, blocks
 * separated by two blank lines, gnuplot's `index`) and NAME.gp (a script whose output is NAME.png)
 * — so the PNG can be remade by hand with `cd DIR && gnuplot NAME.gp`. sl_gnuplot_render runs that.
 */
#ifndef SHARDLAB_COMMON_GNUPLOT_H
#define SHARDLAB_COMMON_GNUPLOT_H

#include <stdbool.h>

#include "shardlab/status.h"

typedef struct sl_plot_series {
    const char *title;
    int n;
    const double *x, *y; /* [n]; a non-finite y is written as NaN and left out of the line */
} sl_plot_series;

typedef struct sl_plot {
    const char *name; /* file stem: NAME.dat, NAME.gp, NAME.png */
    const char *title, *xlabel, *ylabel;
    bool log_x, log_y;
    int n_series;
    const sl_plot_series *series;
} sl_plot;

/* Writes dir/NAME.dat and dir/NAME.gp atomically. */
sl_status sl_plot_write(const char *dir, const sl_plot *plot);

/* Whether a `gnuplot` executable is on PATH. */
bool sl_gnuplot_available(void);

/* Runs `gnuplot SCRIPT` with dir as the working directory (scripts name their files relative to
 * it). An error names the script and gnuplot's exit status. */
sl_status sl_gnuplot_render(const char *dir, const char *script);

#endif
