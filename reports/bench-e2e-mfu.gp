# model FLOPs utilisation per configuration (data: bench-e2e-mfu.dat)
set terminal pngcairo size 1100,600 noenhanced
set output 'bench-e2e-mfu.png'
set title 'MFU per configuration: model FLOPs/s against the measured sgemm peak (dashed: the 60% target)'
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.8
set xtics rotate by -50 scale 0 font ',8'
set ylabel 'MFU (% of sgemm peak)'
set yrange [0:100]
set grid ytics
set arrow from graph 0, first 60 to graph 1, first 60 nohead lw 2 dt 2
plot 'bench-e2e-mfu.dat' using 2:xtic(1) notitle
