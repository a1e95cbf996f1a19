# rank 0's peak memory per category against W under ZeRO-3, gpt-small
set terminal pngcairo size 900,550 noenhanced
set output 'bench-e2e-memory-gpt-small.png'
set title 'gpt-small, ZeRO-3: rank 0 peak memory per category (W = 1: single rank)'
set xlabel 'W (ranks)'
set ylabel 'MiB (log scale)'
set xtics (1, 2, 4, 8, 16)
set logscale x 2
set logscale y 10
set key outside right top
set grid
set datafile missing 'nan'
plot \
  'bench-e2e-memory-gpt-small.dat' index 0 using 1:2 with linespoints title 'params_master', \
  'bench-e2e-memory-gpt-small.dat' index 1 using 1:2 with linespoints title 'params_gathered', \
  'bench-e2e-memory-gpt-small.dat' index 2 using 1:2 with linespoints title 'grads_sharded', \
  'bench-e2e-memory-gpt-small.dat' index 3 using 1:2 with linespoints title 'grads_unsharded', \
  'bench-e2e-memory-gpt-small.dat' index 4 using 1:2 with linespoints title 'optim_states', \
  'bench-e2e-memory-gpt-small.dat' index 5 using 1:2 with linespoints title 'activations', \
  'bench-e2e-memory-gpt-small.dat' index 6 using 1:2 with linespoints title 'comm_buffers', \
  'bench-e2e-memory-gpt-small.dat' index 7 using 1:2 with linespoints title 'workspace'
