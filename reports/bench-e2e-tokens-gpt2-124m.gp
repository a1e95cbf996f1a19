# tokens/s per strategy against W, gpt2-124m (data: bench-e2e-tokens-gpt2-124m.dat)
set terminal pngcairo size 900,550 noenhanced
set output 'bench-e2e-tokens-gpt2-124m.png'
set title 'gpt2-124m: training throughput per strategy'
set xlabel 'W (ranks)'
set ylabel 'tokens/s'
set xtics (1, 2, 4, 8, 16)
set logscale x 2
set yrange [0:*]
set key outside right top
set grid
plot \
  'bench-e2e-tokens-gpt2-124m.dat' index 0 using 1:2 with linespoints title 'zero3'
