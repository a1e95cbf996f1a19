# tokens/s per strategy against W, gpt-tiny (data: bench-e2e-tokens-gpt-tiny.dat)
set terminal pngcairo size 900,550 noenhanced
set output 'bench-e2e-tokens-gpt-tiny.png'
set title 'gpt-tiny: training throughput per strategy'
set xlabel 'W (ranks)'
set ylabel 'tokens/s'
set xtics (1, 2, 4, 8, 16)
set logscale x 2
set yrange [0:*]
set key outside right top
set grid
plot \
  'bench-e2e-tokens-gpt-tiny.dat' index 0 using 1:2 with linespoints title 'fsdp1_no_shard', \
  'bench-e2e-tokens-gpt-tiny.dat' index 1 using 1:2 with linespoints title 'fsdp1_full_shard', \
  'bench-e2e-tokens-gpt-tiny.dat' index 2 using 1:2 with linespoints title 'fsdp1_prefetch', \
  'bench-e2e-tokens-gpt-tiny.dat' index 3 using 1:2 with linespoints title 'fsdp1_shard_grad_op', \
  'bench-e2e-tokens-gpt-tiny.dat' index 4 using 1:2 with linespoints title 'fsdp2', \
  'bench-e2e-tokens-gpt-tiny.dat' index 5 using 1:2 with linespoints title 'zero1', \
  'bench-e2e-tokens-gpt-tiny.dat' index 6 using 1:2 with linespoints title 'zero2', \
  'bench-e2e-tokens-gpt-tiny.dat' index 7 using 1:2 with linespoints title 'zero3'
