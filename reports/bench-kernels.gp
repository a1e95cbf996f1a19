# kernel GFLOP/s (data: bench-kernels.dat)
set terminal pngcairo size 1300,650 noenhanced
set output 'bench-kernels.png'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by -60 scale 0 font ',8'
set ylabel 'GFLOP/s'
set grid ytics
set key top center horizontal
set datafile missing 'nan'
set title 'kernels at GPT shapes, GFLOP/s (dashed: measured sgemm peak 296.9 GFLOP/s)'
set yrange [0:341.486]
set arrow from graph 0, first 296.944 to graph 1, first 296.944 nohead lw 2 dt 2
plot 'bench-kernels.dat' using 2:xtic(1) title 'fp32', '' using 3 title 'bf16'
